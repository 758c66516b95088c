// Problems (RFC 9457) as people read them: the API's Chinese title, and a Chinese detail.
//
// The API's `detail` is written for developers (often English); people need to know what
// happened and what to do. Each problem type gets a Chinese explanation here, built from the
// problem's named extension members where they say more (available balance, invalid fields).
// The API's own detail stays visible, smaller, for staff who report the problem.

const FIELDS = {
  phone: "手机号",
  password: "密码",
  kind: "登录身份",
  real_name: "姓名",
  id_number: "身份证号",
  community_id: "所属社区",
  organisation_id: "组织",
  volunteer_id: "志愿者",
  reason: "原因",
  minutes: "分钟数",
  from: "开始日期",
  to: "结束日期",
  period_from: "开始日期",
  period_to: "结束日期",
  valid_until: "授权截止时间",
  actions: "代办事项",
  subject_id: "被代办人",
  proxy_staff_id: "代办人",
  code: "编码",
  name: "名称",
  cursor: "分页位置",
  body: "请求内容",
};

const hours = (minutes) => `${(minutes / 60).toFixed(1)} 小时`;

const EXPLAIN = {
  "network": () => "无法连接服务器，请检查网络后重试。",
  "invalid-credentials": () => "请检查手机号、密码和登录身份是否正确。多次输错后需要等待一段时间才能再试。",
  "invalid-refresh-token": () => "为了账户安全，请重新登录。",
  "unauthenticated": () => "登录已过期或尚未登录，请重新登录。",
  "login-locked": () => "密码连续输错次数过多，账户已暂时锁定，请稍后再试。",
  "too-many-requests": (p) =>
    p.retry_after ? `请在 ${p.retry_after} 秒后再试。` : "操作太频繁了，请稍等片刻再试。",
  "account-disabled": () => "该账号已停用，请联系社区工作人员。",
  "forbidden": () => "您的账号没有进行此操作的权限。",
  "out-of-scope": () => "该记录不属于您管理的组织或社区。",
  "proxy-not-allowed": () => "代办授权不包括此操作，或授权已过期。请先结束代办，或请居民更新授权。",
  "not-found": () => "要找的记录不存在，或不在您的管理范围内。",
  "volunteer-not-found": () => "找不到这位志愿者，或其不在您的管理范围内。",
  "activity-not-found": () => "找不到该活动，可能已被删除。",
  "service-record-not-found": () => "找不到该服务记录，或其不在您的管理范围内。",
  "organisation-not-found": () => "找不到该组织，或其不在您的管理范围内。",
  "certificate-not-found": () => "找不到该证明。",
  "activity-state": (p) =>
    p.status ? `活动当前状态为“${STATUS[p.status] || p.status}”，请先结束活动再确认时长。` : "活动当前的状态不允许此操作。",
  "record-state": () => "这条服务记录当前的状态不允许此操作，请刷新后查看最新状态。",
  "already-confirmed": () => "这条服务记录已经确认过，无需重复确认。",
  "reversal-shortfall": () => "志愿者已用掉部分时长或积分，按本区规则不能冲正。",
  "insufficient-balance": (p) =>
    p.available_minutes !== undefined
      ? `可用时长只有 ${hours(p.available_minutes)}。`
      : p.available_points !== undefined
        ? `可用积分只有 ${p.available_points} 分。`
        : "可用余额不足。",
  "already-registered": () => "该身份证号已经登记过，请在志愿者列表中查找此人。",
  "mobile-taken": () => "该手机号已被其他账号使用。",
  "invalid-personal-data": () => "请检查手机号（11 位）和身份证号（18 位，含校验位）是否填写正确。",
  "invalid-reference": (p) => `所选的${FIELDS[p.field] || "记录"}不可用，请重新选择。`,
  "invalid-period": () => "结束日期不能早于开始日期。",
  "period-too-long": () => "查询的时间范围太长，请缩短后再试。",
  "idempotency-request-in-flight": () => "同样的操作正在处理中，请稍候片刻再刷新查看结果。",
  "idempotency-key-reused": () => "请刷新页面后重新操作。",
  "busy": () => "服务器正忙，请稍后重试。",
  "database-unavailable": () => "数据暂时无法读取，请稍后重试。",
  "unavailable": () => "服务暂时不可用，请稍后重试。",
  "console-file-not-found": () => "请刷新页面；如仍有问题，请联系管理员。",
  "validation-failed": (p) => {
    const fields = [...new Set((p.errors || []).map((e) => FIELDS[e.field] || e.field).filter(Boolean))];
    return fields.length ? `请检查以下内容：${fields.join("、")}。` : "请检查填写的内容。";
  },
  "malformed-request": () => "提交的内容格式不正确，请检查后重试。",
  "bad-request": () => "请求格式不正确，请刷新页面后重试。",
};

export const STATUS = {
  draft: "草稿",
  published: "已发布",
  closed: "已结束",
  settled: "已结算",
  cancelled: "已取消",
  checked_in: "已签到（未签退）",
  attended: "待确认",
  disputed: "有异议",
  confirmed: "已确认",
  rejected: "已驳回",
  reversed: "已冲正",
};

/** `{title, detail, original}` of a Problem (or any error) in Chinese. */
export function explain(error) {
  const body = error?.body || {};
  const slug = error?.slug || "";
  const explainer = EXPLAIN[slug];
  const byStatus =
    error?.status >= 500 ? "服务器出现问题，请稍后重试；如果一直出现，请把下方编号告诉管理员。" : "请检查后重试。";
  return {
    title: body.title || error?.message || "操作失败",
    detail: explainer ? explainer(body) : byStatus,
    original: [body.detail, body.request_id ? `编号 ${body.request_id}` : ""].filter(Boolean).join(" · "),
  };
}

/** Adds a domain's explanations (`slug → (problem) => Chinese text`), from its page module. */
export function explainAlso(more) {
  Object.assign(EXPLAIN, more);
}
