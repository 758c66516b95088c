"""timebank — 时间银行与志愿积分兑换服务."""

__version__ = "0.1.0"
