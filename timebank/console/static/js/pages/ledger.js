// Volunteer H5 (and a proxy acting for a resident): balances in hours and points, and the statement.

import * as api from "../api.js";
import { dateTime, html, More, ProblemBox, Segmented, useEffect, usePaged, useState } from "../ui.js";

// What a statement line says: the title each domain declares for its ledger code (TransferCode;
// tests/console/test_volunteer_statement.py keeps the two equal); unknown codes show the memo.
const CODES = {
  service_confirmed: "志愿服务时长确认",
  honour_grant: "荣誉时长补录",
  group_service_confirmed: "团体服务时长确认",
  debt_recovery: "冲正欠款扣回",
  reversal_shortfall: "冲正欠款记账",
  referral_reward: "推荐新志愿者奖励",
  points_redeemed: "积分兑换",
  points_ordered: "线上兑换订单",
  points_refunded: "积分兑换退回",
  points_expired: "积分到期",
  care_hold: "时间银行服务预留",
  care_released: "时间银行预留释放",
  care_settled: "时间银行服务结算",
  care_overrun: "时间银行超时服务结算",
  care_gift: "时长赠与亲属",
  care_donation: "时长捐赠",
  guarantee_grant: "政府托底时长发放",
  reversal: "冲正",
  hold_expired: "预留到期释放",
};

const forPerson = (who) => who.kind === "volunteer" || who.acting !== null;
const whose = (who) => (who.acting ? who.acting.name : who.me.real_name);

function amount(value) {
  return value.unit === "time" ? `${value.hours} 小时` : `${value.points} 分`;
}

function Balances({ who }) {
  const [balances, setBalances] = useState(null);
  const [error, setError] = useState(null);
  const acting = who.acting?.id;
  useEffect(() => {
    setBalances(null);
    api.get("/me/balances", { asSubject: true }).then(setBalances, setError);
  }, [acting]);
  return html`<section>
    <h1>${whose(who)} 的时间与积分</h1>
    <${ProblemBox} error=${error} />
    ${!balances && !error && html`<p class="muted">正在加载…</p>`}
    ${balances &&
    html`<div class="tiles">
        <div class="tile" data-testid="time-balance">
          <span class="tile-label">可用时长</span>
          <span class="tile-value">${balances.time.available.hours}<small> 小时</small></span>
          <span class="tile-note">
            累计入账 ${balances.time.posted.hours} 小时${balances.time.held.minutes
              ? `，冻结 ${balances.time.held.hours} 小时`
              : ""}
          </span>
        </div>
        <div class="tile" data-testid="points-balance">
          <span class="tile-label">可用积分</span>
          <span class="tile-value">${balances.points.available.points}<small> 分</small></span>
          <span class="tile-note">
            累计 ${balances.points.posted.points} 分${balances.points.held.points
              ? `，冻结 ${balances.points.held.points} 分`
              : ""}
          </span>
        </div>
      </div>
      <a class="button secondary wide" href="#/statement">查看明细</a>`}
  </section>`;
}

const UNITS = [
  ["", "全部"],
  ["TIME", "时长"],
  ["POINTS", "积分"],
];

function Statement({ who }) {
  const [unit, setUnit] = useState("");
  const acting = who.acting?.id;
  const list = usePaged(
    (cursor) => api.get("/me/statement", { query: { unit, cursor, limit: 20 }, asSubject: true }),
    [unit, acting],
  );
  return html`<section>
    <h1>${whose(who)} 的收支明细</h1>
    <${Segmented} label="类别" options=${UNITS} value=${unit} onChange=${setUnit} />
    <${ProblemBox} error=${list.error} />
    <ul class="rows">
      ${list.items.map(
        (line) => html`<li class="row statement-line">
          <div>
            <strong>${CODES[line.code] || line.memo || line.code}</strong>
            <span class="muted">${dateTime(line.created_at)}${line.memo ? ` · ${line.memo}` : ""}</span>
          </div>
          <div class="figures">
            <span class=${line.direction === "credit" ? "plus" : "minus"}>
              ${line.direction === "credit" ? "+" : "−"}${amount(line.amount)}
            </span>
            <span class="muted">余 ${amount(line.balance_after)}</span>
          </div>
        </li>`,
      )}
    </ul>
    <${More} list=${list} empty="暂无收支记录" />
  </section>`;
}

export default [
  { path: "/balances", title: "我的时间", nav: "时间与积分", audience: "志愿者", allow: forPerson, view: Balances },
  { path: "/statement", title: "收支明细", nav: "收支明细", audience: "志愿者", allow: forPerson, view: Statement },
];
