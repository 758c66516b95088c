// Volunteer H5 (and a proxy acting for a resident): star level and progress to the next, the
// one-time redemption code with its QR, points expiring soon, and their care requests.
// Balances and the statement are the ledger's pages (ledger.js).

import { renderSVG } from "../../vendor/uqr-0.1.3/uqr.mjs";
import * as api from "../api.js";
import { explainAlso } from "../problems.js";
import {
  clock,
  dateTime,
  dayName,
  html,
  More,
  ProblemBox,
  Segmented,
  useEffect,
  usePaged,
  useState,
} from "../ui.js";

const forPerson = (who) => who.kind === "volunteer" || who.acting !== null;
const whose = (who) => (who.acting ? who.acting.name : "我");
const STARS = ["未评星", "一星", "二星", "三星", "四星", "五星"];
const starName = (level) => STARS[level] || `${level} 星`;

explainAlso({
  "care-request-not-found": () => "找不到这条照护需求，或您无权查看。",
});

/** GET `path` as the subject (X-Act-For while acting), reloaded when the subject changes. */
function useSubject(path, query) {
  const [state, setState] = useState({ data: null, error: null });
  const [generation, setGeneration] = useState(0);
  const key = JSON.stringify(query || {});
  useEffect(() => {
    let live = true;
    setState({ data: null, error: null });
    api.get(path, { query, asSubject: true }).then(
      (data) => live && setState({ data, error: null }),
      (error) => live && setState({ data: null, error }),
    );
    return () => {
      live = false;
    };
  }, [path, key, api.session()?.acting?.id, generation]);
  return { ...state, reload: () => setGeneration((n) => n + 1) };
}

const hoursOf = (minutes) => (minutes / 60).toFixed(1);

function Rating({ who }) {
  const { data: rating, error } = useSubject("/me/rating");
  if (error) return html`<section><h1>星级</h1><${ProblemBox} error=${error} /></section>`;
  if (!rating) return html`<section><h1>星级</h1><p class="muted">正在加载…</p></section>`;
  const thresholds = rating.thresholds_hours;
  const from = rating.level > 0 ? thresholds[rating.level - 1] : 0;
  const to = rating.next_level ? thresholds[rating.next_level - 1] : null;
  const served = rating.service_minutes / 60;
  const percent = to ? Math.max(0, Math.min(100, Math.floor(((served - from) / (to - from)) * 100))) : 100;
  return html`<section>
    <h1>${whose(who)}的星级</h1>
    <div class="card rating" data-testid="rating">
      <p class="stars" aria-label=${starName(rating.level)}>
        ${"★".repeat(rating.level)}${"☆".repeat(Math.max(0, thresholds.length - rating.level))}
      </p>
      <p class="tile-value" data-testid="level">${starName(rating.level)}</p>
      <p class="muted">${rating.level_since ? `${dayName(rating.level_since)} 起` : "尚未达到一星"}</p>
      <p>累计服务 <b data-testid="service-hours">${hoursOf(rating.service_minutes)}</b> 小时</p>
      ${to !== null
        ? html`<div class="level-progress">
            <p>距离${starName(rating.next_level)}（${to} 小时）还差 <b data-testid="hours-to-next"
              >${hoursOf(rating.minutes_to_next)}</b> 小时</p>
            <div class="bar" role="progressbar" aria-label="升级进度" aria-valuemin="0" aria-valuemax="100"
              aria-valuenow=${percent} data-testid="level-progress">
              <div class="bar-fill" style=${{ width: `${percent}%` }}></div>
            </div>
            <p class="muted">${from}–${to} 小时 · 已完成 ${percent}%</p>
          </div>`
        : html`<p class="notice">已达到最高星级</p>`}
      ${rating.barred_until &&
      html`<p class="problem">暂停评星至 ${dayName(rating.barred_until)}，期间星级不提升。</p>`}
      <p class="muted">${rating.as_of ? `统计截至 ${dateTime(rating.as_of)}` : "星级每天统计一次，今天尚未统计"}</p>
    </div>
    <p class="muted">各星级所需累计服务时长：${thresholds.map((h, i) => `${starName(i + 1)} ${h} 小时`).join("，")}</p>
  </section>`;
}

function qrImage(payload) {
  const svg = renderSVG(payload, { border: 4, ecc: "M" });
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}

/** Seconds left until `deadline` (ms), ticking every second. */
function useCountdown(deadline) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!deadline) return undefined;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [deadline]);
  return deadline ? Math.max(0, Math.ceil((deadline - now) / 1000)) : 0;
}

function Expiring({ expiring }) {
  if (!expiring) return null;
  return html`<div class="card" data-testid="expiring">
    <h2>即将到期的积分</h2>
    ${expiring.expiring_points === 0
      ? html`<p class="muted">${expiring.within_days} 天内没有到期的积分。</p>`
      : html`<p>${expiring.within_days} 天内将有 <b>${expiring.expiring_points}</b> 分到期，请尽早兑换。</p>
          <ul class="lines">
            ${expiring.lots.map(
              (lot) => html`<li><span>${dayName(lot.expires_on)}到期</span>
                <span>${lot.points} 分</span></li>`,
            )}
          </ul>`}
  </div>`;
}

function Code({ who }) {
  const balances = useSubject("/me/balances");
  const expiring = useSubject("/me/points-expiring");
  const [code, setCode] = useState(null); // the API's answer and its local deadline
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const left = useCountdown(code?.deadline);
  const ask = async () => {
    setBusy(true);
    setError(null);
    try {
      const answer = await api.post("/me/redemption-codes", undefined, { asSubject: true });
      // The phone's clock may be off: count the validity from now, not from expires_at.
      setCode({ ...answer, deadline: Date.now() + answer.valid_seconds * 1000, qr: qrImage(answer.qr_payload) });
    } catch (problem) {
      setError(problem);
    } finally {
      setBusy(false);
    }
  };
  const live = code && left > 0;
  return html`<section>
    <h1>${whose(who)}的兑换码</h1>
    <${ProblemBox} error=${error || balances.error} />
    ${balances.data &&
    html`<p class="muted">可用积分 <b data-testid="code-points">${balances.data.points.available.points}</b> 分</p>`}
    ${live &&
    html`<div class="card code" data-testid="code-card">
      <img class="qr" src=${code.qr} alt=${`兑换二维码，数字码 ${code.code}`} width="240" height="240" />
      <p class="code-digits" data-testid="code" data-code=${code.code}>${code.code.slice(0, 4)} ${code.code.slice(4)}</p>
      <p class="muted" role="timer">请在 <b>${left}</b> 秒内向门店出示，只能使用一次</p>
    </div>`}
    ${code && !live && html`<p class="notice" role="status">兑换码已过期，请重新生成。</p>`}
    <button class="wide" disabled=${busy} onClick=${ask}>${code ? "重新生成兑换码" : "生成兑换码"}</button>
    <${Expiring} expiring=${expiring.data} />
  </section>`;
}

const CARE_STATUS = {
  pending_review: "待审核",
  open: "待接单",
  assigned: "已安排",
  reported: "待确认时长",
  disputed: "有异议",
  completed: "已完成",
  rejected: "未通过",
  cancelled: "已取消",
  expired: "已过期",
};
const CARE_BADGE = { completed: "confirmed", pending_review: "attended", open: "attended", reported: "attended" };
const CARE_FILTERS = [
  ["", "全部"],
  ["pending_review", "待审核"],
  ["assigned", "已安排"],
  ["completed", "已完成"],
];

function CareRow({ request, subject, who }) {
  const mine = request.recipient_id === subject;
  const time = request.settled || request.reported || request.estimated;
  return html`<li class="row" data-testid="care-request" data-status=${request.status}>
    <div>
      <strong>${request.category_name}</strong> <small>${mine ? "我申请的" : "我服务的"}</small>
      <span class="muted">${dateTime(request.window_start)}–${clock(request.window_end)}</span>
      <span class="muted">${request.place}${request.reason ? ` · ${request.reason}` : ""}</span>
    </div>
    <div class="figures">
      <span class=${`badge status-${CARE_BADGE[request.status] || (request.status === "assigned" ? "published" : "disputed")}`}>
        ${CARE_STATUS[request.status] || request.status}</span>
      <span class="muted">${time.hours} 小时</span>
    </div>
  </li>`;
}

function Care({ who }) {
  const [status, setStatus] = useState("");
  const acting = who.acting?.id;
  const subject = acting || who.me.id;
  const list = usePaged(
    (cursor) => api.get("/care-requests", { query: { view: "mine", status, cursor, limit: 20 }, asSubject: true }),
    [status, acting],
  );
  return html`<section>
    <h1>${whose(who)}的照护需求</h1>
    <${Segmented} label="状态" options=${CARE_FILTERS} value=${status} onChange=${setStatus} />
    <${ProblemBox} error=${list.error} />
    <ul class="rows">
      ${list.items.map((r) => html`<${CareRow} key=${r.id} request=${r} subject=${subject} who=${who} />`)}
    </ul>
    <${More} list=${list} empty="暂无照护需求" />
  </section>`;
}

export default [
  { path: "/me/code", title: "兑换码", nav: "兑换码", audience: "志愿者", allow: forPerson, view: Code },
  { path: "/me/rating", title: "星级", nav: "星级", audience: "志愿者", allow: forPerson, view: Rating },
  { path: "/me/care", title: "照护需求", nav: "照护需求", audience: "志愿者", allow: forPerson, view: Care },
];
