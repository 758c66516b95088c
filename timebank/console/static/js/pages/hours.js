// Staff: activities by day, attendance with check-in state, confirm one or all with the counted
// hours visible, reverse with a reason, export an activity's records.

import * as api from "../api.js";
import { STATUS } from "../problems.js";
import {
  clock,
  dateTime,
  field,
  hours,
  html,
  More,
  ProblemBox,
  Progress,
  Segmented,
  today,
  useEffect,
  usePaged,
  useState,
  useTask,
} from "../ui.js";

export const forStaff = (who) => who.kind === "staff" || who.kind === "admin";

const RANGES = [
  ["today", "今天", () => [today(), today()]],
  ["past", "近 7 天", () => [today(-7), today()]],
  ["next", "未来 7 天", () => [today(), today(7)]],
];

function Activities() {
  const [range, setRange] = useState("today");
  const [from, to] = RANGES.find(([key]) => key === range)[2]();
  const list = usePaged((cursor) => api.get("/activities", { query: { from, to, cursor, limit: 20 } }), [range]);
  return html`<section>
    <h1>活动与考勤</h1>
    <${Segmented} label="日期" options=${RANGES} value=${range} onChange=${setRange} />
    <${ProblemBox} error=${list.error} />
    <ul class="rows">
      ${list.items.map(
        (a) => html`<li class="row">
          <a class="row-link" href=${`#/activities/${a.id}`}>
            <strong>${a.title}</strong>
            <span class="muted">${dateTime(a.starts_at)}–${clock(a.ends_at)} · ${a.place}</span>
            <span class="muted">${a.organisation_name} · 报名 ${a.signed_up}/${a.capacity}</span>
          </a>
          <span class=${`badge status-${a.status}`}>${STATUS[a.status] || a.status}</span>
        </li>`,
      )}
    </ul>
    <${More} list=${list} empty="这段时间没有活动" />
  </section>`;
}

const FILTERS = [
  ["", "全部"],
  ["attended", "待确认"],
  ["checked_in", "未签退"],
  ["confirmed", "已确认"],
  ["reversed", "已冲正"],
];

function RecordRow({ record, onConfirm, onReverse, busy }) {
  const [reversing, setReversing] = useState(false);
  const submitReversal = (event) => {
    event.preventDefault();
    onReverse(record, field(event.currentTarget, "reason"));
  };
  return html`<li class="row record" data-testid="record" data-status=${record.status}>
    <div>
      <strong>${record.volunteer_name}</strong>${record.role === "organiser" ? html` <small>组织者</small>` : ""}
      <span class="muted">签到 ${clock(record.check_in_at)} · 签退 ${clock(record.check_out_at)}</span>
      <span class="counted">计入 <b data-testid="counted-hours">${record.counted_hours}</b> 小时${record.points !== null
        ? ` · ${record.points} 分`
        : ""}</span>
    </div>
    <div class="actions">
      <span class=${`badge status-${record.status}`}>${STATUS[record.status] || record.status}</span>
      ${record.status === "attended" &&
      html`<button class="small" disabled=${busy} onClick=${() => onConfirm(record)}>确认</button>`}
      ${record.status === "confirmed" &&
      !reversing &&
      html`<button class="small danger" disabled=${busy} onClick=${() => setReversing(true)}>冲正</button>`}
    </div>
    ${reversing &&
    html`<form class="reverse" onSubmit=${submitReversal}>
      <label>冲正原因
        <input name="reason" required minlength="2" maxlength="500" placeholder="例如：签到时间登记错误" />
      </label>
      <div class="actions">
        <button type="submit" class="small danger" disabled=${busy}>确认冲正</button>
        <button type="button" class="small secondary" onClick=${() => setReversing(false)}>取消</button>
      </div>
    </form>`}
  </li>`;
}

function ConfirmAll({ activity, pending, partial, run, busy, done }) {
  const closable = activity.status === "published" && new Date(activity.ends_at) <= new Date();
  const confirmable = activity.status === "closed" || activity.status === "settled";
  const minutes = pending.reduce((sum, r) => sum + r.counted_minutes, 0);
  const close = () =>
    run("正在结束活动", () => api.post(`/activities/${activity.id}/status`, { status: "closed" })).then(done);
  const confirmAll = () =>
    run(`正在确认 ${pending.length} 条考勤记录`, () =>
      api.post(`/activities/${activity.id}/confirm`, undefined, { idempotencyKey: api.idempotencyKey() }),
    ).then((result) => result && done(result));
  return html`<div class="card confirm-all">
    <p>待确认 <b data-testid="pending-count">${pending.length}</b> 条，合计计入
      <b data-testid="pending-hours">${hours(minutes)}</b> 小时${partial ? "（已加载的记录，更多请点“加载更多”）" : ""}</p>
    ${closable && html`<button class="secondary" disabled=${busy} onClick=${close}>结束活动（停止签到）</button>`}
    ${confirmable &&
    html`<button disabled=${busy || pending.length === 0} onClick=${confirmAll}>全部确认</button>`}
    ${!confirmable && !closable && html`<p class="muted">活动结束后才能确认时长。</p>`}
  </div>`;
}

function Activity({ params }) {
  const id = params.id;
  const [activity, setActivity] = useState(null);
  const [filter, setFilter] = useState("");
  const [outcome, setOutcome] = useState(null);
  const { task, error, run, busy } = useTask();
  const load = () => api.get(`/activities/${id}`).then(setActivity, () => {});
  useEffect(() => {
    load();
  }, [id]);
  const list = usePaged(
    (cursor) => api.get(`/activities/${id}/records`, { query: { status: filter, cursor, limit: 50 } }),
    [id, filter],
  );
  const refresh = (result) => {
    if (result?.confirmed !== undefined) {
      setOutcome(`已确认 ${result.confirmed} 条，共 ${result.hours_total} 小时，积分 ${result.points_total} 分` +
        (result.skipped_disputed || result.skipped_incomplete
          ? `；未确认：有异议 ${result.skipped_disputed} 条，未签退 ${result.skipped_incomplete} 条`
          : ""));
    }
    load();
    list.reload();
  };
  const confirmOne = (record) =>
    run(`正在确认 ${record.volunteer_name} 的时长`, () =>
      api.post(`/service-records/${record.id}/confirm`, {}, { idempotencyKey: api.idempotencyKey() }),
    ).then((r) => r && (setOutcome(`已确认 ${record.volunteer_name}：${r.hours} 小时，积分 ${r.points} 分`), refresh()));
  const reverse = (record, reason) =>
    run(`正在冲正 ${record.volunteer_name} 的时长`, () =>
      api.post(`/service-records/${record.id}/reverse`, { reason }, { idempotencyKey: api.idempotencyKey() }),
    ).then((r) => r && (setOutcome(`已冲正 ${record.volunteer_name}：${hours(r.reversed_minutes)} 小时，积分 ${r.reversed_points} 分`), refresh()));
  const exportAs = (format) =>
    run(`正在导出 ${format.toUpperCase()}`, (progress) =>
      api.download(`/activities/${id}/export`, { format }, `activity-${id}.${format}`, progress),
    );
  if (!activity) return html`<p class="muted">正在加载…</p>`;
  const pending = list.items.filter((r) => r.status === "attended");
  return html`<section>
    <a href="#/activities">← 活动列表</a>
    <h1>${activity.title}</h1>
    <p class="muted">${dateTime(activity.starts_at)}–${clock(activity.ends_at)} · ${activity.place} ·
      ${activity.organisation_name} · <span class=${`badge status-${activity.status}`}>${STATUS[activity.status]}</span></p>
    <${Progress} task=${task} />
    <${ProblemBox} error=${error || list.error} />
    ${outcome && html`<p class="notice" role="status" data-testid="outcome">${outcome}</p>`}
    <${ConfirmAll} activity=${activity} pending=${pending} partial=${list.hasMore} run=${run} busy=${busy} done=${refresh} />
    <${Segmented} label="考勤状态" options=${FILTERS} value=${filter} onChange=${setFilter} />
    <ul class="rows">
      ${list.items.map(
        (r) => html`<${RecordRow} key=${r.id} record=${r} busy=${busy} onConfirm=${confirmOne} onReverse=${reverse} />`,
      )}
    </ul>
    <${More} list=${list} empty="暂无考勤记录" />
    <div class="card">
      <h2>导出本活动记录</h2>
      <div class="actions">
        <button class="secondary" disabled=${busy} onClick=${() => exportAs("csv")}>下载 CSV</button>
        <button class="secondary" disabled=${busy} onClick=${() => exportAs("xlsx")}>下载 Excel</button>
      </div>
    </div>
  </section>`;
}

export default [
  { path: "/activities", title: "活动与考勤", nav: "活动与考勤", audience: "社区工作人员", allow: forStaff, view: Activities },
  { path: "/activities/:id", title: "活动考勤", audience: "社区工作人员", allow: forStaff, view: Activity },
];
