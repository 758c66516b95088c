"""Refusals of the console's file server."""

from __future__ import annotations

from timebank.problems import NotFound


class FileNotFound(NotFound):
    """No console file by that name."""

    slug, title = "console-file-not-found", "控制台页面文件不存在"
