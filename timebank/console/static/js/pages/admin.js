// Administrators: every domain's periodic tasks (定时任务) — schedule, next run, the latest run and
// its result — and running one now. A requested run is queued for the scheduler's next sweep
// (seconds); the page follows it through the job list until it has finished.

import * as api from "../api.js";
import { explainAlso } from "../problems.js";
import { formatTime } from "../time.js";
import { html, More, ProblemBox, Progress, usePaged, useState } from "../ui.js";

export const forAdmin = (who) => who.kind === "admin";

explainAlso({
  "job-not-found": () => "没有这个定时任务，请刷新页面后重试。",
  "idempotency-key-missing": () => "请刷新页面后重新操作。",
});

const RUN_STATUS = { queued: "排队中", running: "运行中", succeeded: "成功", failed: "失败" };
const TONE = { queued: "attended", running: "attended", succeeded: "confirmed", failed: "rejected" };
const TRIGGERS = { schedule: "定时", "catch-up": "补跑", request: "手动" };
const COUNTS = {
  confirmed: "确认",
  remaining: "剩余",
  expired: "失效",
  sealed: "封存",
  voided: "释放预留",
  purged: "清理",
  notices: "提醒",
  findings: "发现问题",
  sent: "已发送",
  failed: "发送失败",
  raised: "升星",
  lowered: "降星",
  regions: "区域",
  updated: "更新",
  bars_ended: "禁评期满",
};

// Following a requested run: how often, and for how long before leaving it to a later look.
const POLL_MS = 1_000;
const FOLLOW_MS = 120_000;

/** A crontab (or `every N s`) as people read it; anything unusual stays as written. */
export function schedule(text) {
  const every = /^every (\d+) s$/.exec(text);
  if (every) {
    const s = Number(every[1]);
    return s % 3600 === 0 ? `每 ${s / 3600} 小时` : s % 60 === 0 ? `每 ${s / 60} 分钟` : `每 ${s} 秒`;
  }
  const [minute, hour, day, month, weekday, ...rest] = text.split(/\s+/);
  const number = (v) => /^\d+$/.test(v ?? "");
  if (rest.length || month !== "*" || weekday !== "*" || !number(minute)) return text;
  const at = `${hour.padStart(2, "0")}:${minute.padStart(2, "0")}`;
  if (hour === "*" && day === "*") return `每小时第 ${Number(minute)} 分`;
  if (!number(hour)) return text;
  if (day === "*") return `每天 ${at}`;
  return number(day) ? `每月 ${day} 日 ${at}` : text;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function allJobs() {
  const jobs = [];
  let cursor = null;
  do {
    const page = await api.get("/admin/jobs", { query: { cursor, limit: 100 } });
    jobs.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return jobs;
}

/** Queues a run of `name` and follows it: `seen(run)` on every change; the last run it saw. */
async function runNow(name, seen) {
  let run = await api.post(`/admin/jobs/${name}/runs`, {}, { idempotencyKey: api.idempotencyKey() });
  seen(run);
  const until = Date.now() + FOLLOW_MS;
  while ((run.status === "queued" || run.status === "running") && Date.now() < until) {
    await sleep(POLL_MS);
    const latest = (await allJobs()).find((job) => job.name === name)?.last_run;
    if (latest && latest.id === run.id && latest.status !== run.status) seen((run = latest));
  }
  return run;
}

function RunResult({ run }) {
  if (!run) return html`<span class="muted">尚未运行</span>`;
  const counts = Object.entries(run.counts || {});
  const seconds =
    run.started_at && run.finished_at ? ((new Date(run.finished_at) - new Date(run.started_at)) / 1000).toFixed(1) : null;
  return html`<div class="job-run" data-testid="job-run" data-status=${run.status}>
    <span class=${`badge status-${TONE[run.status]}`}>${RUN_STATUS[run.status] || run.status}</span>
    <span class="muted">${TRIGGERS[run.trigger] || run.trigger} · ${formatTime(run.finished_at || run.started_at || run.scheduled_for)}${seconds !== null ? ` · 用时 ${seconds} 秒` : ""}</span>
    ${counts.length > 0 &&
    html`<span class="muted" data-testid="job-counts">${counts.map(([k, v]) => `${COUNTS[k] || k} ${v}`).join("，")}</span>`}
    ${run.error && html`<span class="problem-original">错误：${run.error}</span>`}
  </div>`;
}

/** Whether a run this page asked for is still being submitted or followed. */
const active = (f) => Boolean(f && !f.late && (f.run === null || f.run?.status === "queued" || f.run?.status === "running"));

function JobRow({ job, following, start }) {
  const run = following?.run ?? job.last_run;
  const busy = active(following);
  return html`<li class="row" data-testid="job" data-job=${job.name}>
    <div>
      <strong>${job.title}</strong> <small>${job.name}</small>
      <span class="muted">计划：${schedule(job.schedule)} · 下次 ${formatTime(job.next_run_at)}</span>
      <${RunResult} run=${run} />
      ${busy &&
      html`<${Progress} task=${{ label: `正在运行（${RUN_STATUS[following.run?.status] || "提交中"}）`, done: 0, total: null }} />`}
      ${following?.late &&
      html`<p class="notice" role="status">任务已排队，尚未完成；调度程序空闲后会运行，请稍后刷新查看结果。</p>`}
    </div>
    <button class="small" disabled=${busy} onClick=${() => start(job)}>立即运行</button>
  </li>`;
}

function Jobs() {
  const list = usePaged((cursor) => api.get("/admin/jobs", { query: { cursor, limit: 50 } }), []);
  const [following, setFollowing] = useState({});
  const [error, setError] = useState(null);
  const follow = (name, value) => setFollowing((old) => ({ ...old, [name]: { ...old[name], ...value } }));
  const start = async (job) => {
    setError(null);
    follow(job.name, { run: null, late: false });
    try {
      const run = await runNow(job.name, (seen) => follow(job.name, { run: seen }));
      follow(job.name, { late: run.status === "queued" || run.status === "running" });
    } catch (problem) {
      setError(problem);
      follow(job.name, { run: undefined });
    }
  };
  return html`<section>
    <h1>定时任务</h1>
    <p class="muted">时间均为北京时间。</p>
    <${ProblemBox} error=${error || list.error} />
    <ul class="rows">
      ${list.items.map(
        (job) => html`<${JobRow} key=${job.name} job=${job} following=${following[job.name]} start=${start} />`,
      )}
    </ul>
    <${More} list=${list} empty="没有定时任务" />
  </section>`;
}

export default [
  { path: "/admin/jobs", title: "定时任务", nav: "定时任务", audience: "管理员", allow: forAdmin, view: Jobs },
];
