// Staff: care requests (时间银行服务需求) of their scope — review, reject with a reason, assign a
// provider, settle a dispute — and, while acting for an offline resident (代办), that resident's
// requests and a new one for them. The API says which actions the caller may take on a request
// (`actions`); the page offers exactly those. Liability and clearing reports download here too.

import * as api from "../api.js";
import { explainAlso } from "../problems.js";
import { formatTime } from "../time.js";
import { field, html, More, ProblemBox, Progress, Segmented, today, useEffect, usePaged, useState, useTask } from "../ui.js";
import { VolunteerSearch } from "./certificates.js";
import { PeriodDownload } from "./exports.js";
import { forStaff } from "./hours.js";

export const CARE_STATUS = {
  pending_review: "待审核",
  open: "待接单",
  assigned: "已指派",
  reported: "待确认时长",
  disputed: "有异议",
  completed: "已完成",
  rejected: "已驳回",
  cancelled: "已取消",
  expired: "已失效",
};

const ACTION_NAMES = {
  create: "提交申请",
  approve: "审核通过",
  reject: "驳回",
  accept: "志愿者接单",
  assign: "指派服务者",
  report: "上报服务时长",
  confirm: "确认并结算",
  dispute: "提出异议",
  cancel: "取消",
  expire: "逾期失效",
  auto_confirm: "逾期自动确认",
};

const ACTORS = { volunteer: "志愿者", staff: "工作人员", admin: "管理员", system: "系统" };
const FUNDING = { own: "本人时长", guarantee_fund: "政府托底基金" };

explainAlso(
  {
    "care-request-not-found": () => "找不到这条服务需求，或其不在您的管理范围内。",
    "recipient-not-found": () => "找不到服务对象，或其不在您的管理范围内。",
    // The problem's `status` member is its HTTP status, whatever the extension meant to say: the
    // page reloads the request after a refusal, so its badge shows the state that refused.
    "care-transition-not-allowed": (p) =>
      `这条需求的状态已经变化，不能${ACTION_NAMES[p.action] || "进行此操作"}。页面已显示最新状态，请查看后再操作。`,
    "care-not-eligible": () => "服务对象或服务者不符合本区时间银行规则（年龄、培训或托底资格），请选择其他人。",
    "overrun-needs-consent": () => "上报的时长超出预留时长，需服务对象同意支付超出部分。",
    "category-not-found": () => "所选服务类别不存在或已停用，请重新选择。",
  },
  {
    provider_id: "服务者",
    recipient_id: "服务对象",
    category_code: "服务类别",
    window_start: "开始时间",
    window_end: "结束时间",
    place: "服务地点",
    estimated_minutes: "预计时长",
    note: "备注",
    funding: "时长来源",
  },
);

const FILTERS = [
  ["", "全部"],
  ["pending_review", "待审核"],
  ["open", "待接单"],
  ["assigned", "已指派"],
  ["reported", "待确认"],
  ["disputed", "有异议"],
  ["completed", "已完成"],
];

// The console's badge colours: waiting on someone (amber), done (green), stopped (red).
const TONE = {
  pending_review: "attended",
  open: "attended",
  reported: "attended",
  disputed: "disputed",
  completed: "confirmed",
  rejected: "rejected",
  cancelled: "cancelled",
  expired: "cancelled",
};
const StatusBadge = ({ status, testid = "care-status" }) =>
  html`<span class=${`badge status-${TONE[status] || status}`} data-testid=${testid}>${CARE_STATUS[status] || status}</span>`;

const span = (r) => `${formatTime(r.window_start)}–${formatTime(r.window_end).slice(11)}`;

/** Volunteers' names by id (staff may read everyone in their scope), fetched once each. */
const names = new Map();
function useName(id) {
  const [name, setName] = useState(id ? names.get(id) : null);
  useEffect(() => {
    if (!id || names.has(id)) return setName(id ? names.get(id) : null);
    let live = true;
    api.get(`/volunteers/${id}`).then(
      (v) => (names.set(id, v.real_name), live && setName(v.real_name)),
      () => live && setName("—"),
    );
    return () => {
      live = false;
    };
  }, [id]);
  return name;
}

const Name = ({ id }) => html`${useName(id) || "…"}`;

function CareList({ who }) {
  const [status, setStatus] = useState(who.acting ? "" : "pending_review");
  const acting = who.acting;
  const list = usePaged(
    (cursor) => api.get("/care-requests", { query: { status, cursor, limit: 20 }, asSubject: true }),
    [status, acting?.id],
  );
  return html`<section>
    <h1>${acting ? `${acting.name} 的照护需求` : "照护服务需求"}</h1>
    ${acting && html`<${NewRequest} acting=${acting} />`}
    <${Segmented} label="需求状态" options=${FILTERS} value=${status} onChange=${setStatus} />
    <${ProblemBox} error=${list.error} />
    <ul class="rows">
      ${list.items.map(
        (r) => html`<li class="row" data-testid="care-request" data-status=${r.status}>
          <a class="row-link" href=${`#/care/${r.id}`}>
            <strong>${r.category_name} · <${Name} id=${r.recipient_id} /></strong>
            <span class="muted">${span(r)}</span>
            <span class="muted">${r.place} · 预计 ${r.estimated.hours} 小时</span>
          </a>
          <${StatusBadge} status=${r.status} />
        </li>`,
      )}
    </ul>
    <${More} list=${list} empty="没有这类需求" />
    ${!acting && html`<p><a href="#/care-reports">照护时长报表（负债、跨社区清算）→</a></p>`}
  </section>`;
}

/** The region's instant of a local day and time (Asia/Shanghai keeps no daylight saving). */
const regionInstant = (day, time) => `${day}T${time}:00+08:00`;

function NewRequest({ acting }) {
  const [categories, setCategories] = useState([]);
  const { task, error, run, busy, setError } = useTask();
  useEffect(() => {
    api.get("/categories", { query: { limit: 100 } }).then(
      (page) => setCategories(page.items.filter((c) => c.status === "active").sort((a, b) => b.one_to_one - a.one_to_one)),
      setError,
    );
  }, []);
  const submit = (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const day = field(form, "day");
    const body = {
      category_code: field(form, "category_code"),
      window_start: regionInstant(day, field(form, "start")),
      window_end: regionInstant(day, field(form, "end")),
      place: field(form, "place"),
      estimated_minutes: Math.round(Number(field(form, "hours")) * 60),
      note: field(form, "note"),
      funding: field(form, "funding"),
    };
    const key = api.idempotencyKey();
    run(`正在为 ${acting.name} 提交需求`, () =>
      api.post("/care-requests", body, { asSubject: true, idempotencyKey: key }),
    ).then((created) => created && (location.hash = `#/care/${created.id}`));
  };
  return html`<form class="card" onSubmit=${submit}>
    <h2>为 ${acting.name} 申请照护</h2>
    <label>服务类别
      <select name="category_code" required>
        ${categories.map((c) => html`<option value=${c.code}>${c.name}</option>`)}
      </select>
    </label>
    <label>服务日期 <input name="day" type="date" required value=${today(1)} /></label>
    <div class="pair">
      <label>开始时间 <input name="start" type="time" required value="09:00" /></label>
      <label>结束时间 <input name="end" type="time" required value="10:00" /></label>
    </div>
    <label>服务地点 <input name="place" required maxlength="200" /></label>
    <label>预计时长（小时） <input name="hours" type="number" required min="0.5" max="24" step="0.5" value="1" /></label>
    <label>时长来源
      <select name="funding">
        ${Object.entries(FUNDING).map(([key, label]) => html`<option value=${key}>${label}</option>`)}
      </select>
    </label>
    <label>备注（可不填） <input name="note" maxlength="1000" /></label>
    <${Progress} task=${task} />
    <${ProblemBox} error=${error} />
    <button type="submit" class="wide" disabled=${busy}>提交需求</button>
  </form>`;
}

function History({ events }) {
  return html`<ol class="rows history">
    ${events.map(
      (e) => html`<li class="row" data-testid="care-event">
        <div>
          <strong>${ACTION_NAMES[e.action] || e.action}</strong>
          ${e.from_status && html` <small>${CARE_STATUS[e.from_status] || e.from_status} → ${CARE_STATUS[e.to_status] || e.to_status}</small>`}
          <span class="muted">${formatTime(e.created_at)} · ${ACTORS[e.actor_kind] || e.actor_kind}${e.minutes !== null ? ` · ${(e.minutes / 60).toFixed(1)} 小时` : ""}</span>
          ${e.reason && html`<span class="muted">原因：${e.reason}</span>`}
        </div>
      </li>`,
    )}
  </ol>`;
}

/** An action that needs a reason (reject, cancel, dispute): a button that opens a short form. */
function WithReason({ label, prompt, busy, act }) {
  const [open, setOpen] = useState(false);
  if (!open) return html`<button class="danger" disabled=${busy} onClick=${() => setOpen(true)}>${label}</button>`;
  const submit = (event) => {
    event.preventDefault();
    act({ reason: field(event.currentTarget, "reason") });
  };
  return html`<form class="reason" onSubmit=${submit}>
    <label>${prompt} <input name="reason" required minlength="2" maxlength="500" /></label>
    <div class="actions">
      <button type="submit" class="danger" disabled=${busy}>确认${label}</button>
      <button type="button" class="secondary" onClick=${() => setOpen(false)}>返回</button>
    </div>
  </form>`;
}

function Assign({ busy, act }) {
  const [provider, setProvider] = useState(null);
  return html`<div>
    <h2>指派服务者</h2>
    <${VolunteerSearch} chosen=${provider} choose=${setProvider} />
    ${provider &&
    html`<button class="wide" disabled=${busy} onClick=${() => act({ provider_id: provider.id })}>
      指派给 ${provider.real_name}
    </button>`}
  </div>`;
}

function Confirm({ request, staff, busy, act }) {
  const submit = (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const hours = field(form, "hours");
    act({
      minutes: hours ? Math.round(Number(hours) * 60) : null,
      reason: field(form, "reason"),
      consent_overrun: Boolean(form.elements.namedItem("consent")?.checked),
    });
  };
  const over = request.reported && request.reported.minutes > request.estimated.minutes;
  return html`<form class="card" onSubmit=${submit}>
    <h2>${staff ? "处理异议并结算" : "确认服务时长"}</h2>
    <p>上报 <b>${request.reported?.hours ?? "—"}</b> 小时，预留 ${request.estimated.hours} 小时</p>
    <label>${staff ? "结算时长（小时，不填按上报，最多为预留时长）" : "结算时长（小时，不填按上报）"}
      <input name="hours" type="number" min="0.1" max="24" step="0.1" />
    </label>
    <label>说明（可不填） <input name="reason" maxlength="500" /></label>
    ${over && html`<label class="check"><input type="checkbox" name="consent" /> 服务对象同意支付超出预留的时长</label>`}
    <button type="submit" disabled=${busy}>确认并结算</button>
  </form>`;
}

function Actions({ request, staff, busy, act }) {
  const can = (a) => request.actions.includes(a);
  const on = (action) => (body) => act(action, body);
  const decide = ["approve", "reject", "dispute", "cancel"].some(can);
  return html`<div>
    ${decide &&
    html`<div class="card actions">
      ${can("approve") && html`<button disabled=${busy} onClick=${() => act("approve")}>审核通过</button>`}
      ${can("reject") && html`<${WithReason} label="驳回" prompt="驳回原因" busy=${busy} act=${on("reject")} />`}
      ${can("dispute") && html`<${WithReason} label="提出异议" prompt="异议原因" busy=${busy} act=${on("dispute")} />`}
      ${can("cancel") && html`<${WithReason} label="取消需求" prompt="取消原因" busy=${busy} act=${on("cancel")} />`}
    </div>`}
    ${can("assign") && html`<${Assign} busy=${busy} act=${on("assign")} />`}
    ${can("confirm") && html`<${Confirm} request=${request} staff=${staff} busy=${busy} act=${on("confirm")} />`}
  </div>`;
}

function CareRequest({ who, params }) {
  const id = params.id;
  const [request, setRequest] = useState(null);
  const [outcome, setOutcome] = useState(null);
  const { task, error, run, busy, setError } = useTask();
  const load = () => api.get(`/care-requests/${id}`, { asSubject: true }).then(setRequest, setError);
  useEffect(() => {
    load();
  }, [id, who.acting?.id]);
  const act = (action, body) =>
    run(`正在${ACTION_NAMES[action]}`, () =>
      api.post(`/care-requests/${id}/${action}`, body, { asSubject: true, idempotencyKey: api.idempotencyKey() }),
    ).then((done) => {
      setOutcome(done ? `已${ACTION_NAMES[action]}，当前状态：${CARE_STATUS[done.status] || done.status}` : null);
      load();
    });
  if (!request) return html`<section><a href="#/care">← 照护需求</a><${ProblemBox} error=${error} /><p class="muted">正在加载…</p></section>`;
  const provider = request.provider_id;
  return html`<section>
    <a href="#/care">← 照护需求</a>
    <h1>${request.category_name} · <${Name} id=${request.recipient_id} /></h1>
    <div class="card care-facts">
      <p><${StatusBadge} status=${request.status} testid="care-state" /></p>
      <p>服务时间：${span(request)}</p>
      <p>服务地点：${request.place}</p>
      <p>预计 ${request.estimated.hours} 小时 · ${FUNDING[request.funding] || request.funding}</p>
      ${provider && html`<p>服务者：<${Name} id=${provider} /></p>`}
      ${request.reported && html`<p>上报 ${request.reported.hours} 小时</p>`}
      ${request.settled && html`<p>已结算 ${request.settled.hours} 小时</p>`}
      ${request.note && html`<p>备注：${request.note}</p>`}
      ${request.reason && html`<p>原因：${request.reason}</p>`}
    </div>
    <${Progress} task=${task} />
    <${ProblemBox} error=${error} />
    ${outcome && html`<p class="notice" role="status" data-testid="care-outcome">${outcome}</p>`}
    <${Actions} request=${request} staff=${!who.acting} busy=${busy} act=${act} />
    <h2>处理记录</h2>
    <${History} events=${request.history} />
  </section>`;
}

const REPORTS = [
  ["/reports/care-liability", "照护时长负债", "各社区欠成员的时长、现有预留、每月存入与兑付。"],
  ["/reports/care-clearing", "跨社区清算（通存通兑）", "每月各社区服务者为其他社区居民提供的照护时长。"],
];

function Reports() {
  return html`<section>
    <a href="#/care">← 照护需求</a>
    <h1>照护时长报表</h1>
    ${REPORTS.map(
      ([path, title, note]) => html`<${PeriodDownload} path=${path} name=${path.split("/").pop()} from=${today(-365)} testid="care-report">
        <h2>${title}</h2>
        <p class="muted">${note}</p>
      <//>`,
    )}
  </section>`;
}

export default [
  { path: "/care", title: "照护服务需求", nav: "照护需求", audience: "社区工作人员", allow: forStaff, view: CareList },
  { path: "/care-reports", title: "照护时长报表", audience: "社区工作人员", allow: forStaff, view: Reports },
  { path: "/care/:id", title: "照护需求详情", audience: "社区工作人员", allow: forStaff, view: CareRequest },
];
