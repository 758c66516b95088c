// Staff: a community's star ratings — the volunteers whose new level is under public listing
// (公示) and the month's service leaderboard.

import * as api from "../api.js";
import { useOrganisations } from "../lookups.js";
import { formatDate } from "../time.js";
import { hours, html, More, ProblemBox, usePaged, useState } from "../ui.js";
import { forStaff } from "./hours.js";

const stars = (level) => (level > 0 ? `${"★".repeat(level)} ${level} 星` : "未评星");

function Candidates({ community }) {
  const list = usePaged(
    (cursor) => api.get(`/communities/${community}/rating-candidates`, { query: { cursor, limit: 20 } }),
    [community],
  );
  return html`<div class="card">
    <h2>星级公示</h2>
    <${ProblemBox} error=${list.error} />
    <ul class="rows">
      ${list.items.map(
        (c) => html`<li class="row" data-testid="candidate">
          <div>
            <strong>${c.real_name}</strong> <span class="badge status-published">${stars(c.level)}</span>
            <span class="muted">累计服务 ${hours(c.service_minutes)} 小时</span>
            <span class="muted">公示 ${formatDate(c.created_at)} 至 ${formatDate(c.listed_until)}</span>
          </div>
        </li>`,
      )}
    </ul>
    <${More} list=${list} empty="目前没有公示中的星级" />
  </div>`;
}

function Leaderboard({ community }) {
  const [month, setMonth] = useState(formatDate(new Date().toISOString()).slice(0, 7));
  const list = usePaged(
    (cursor) => api.get(`/communities/${community}/leaderboard`, { query: { month, cursor, limit: 20 } }),
    [community, month],
  );
  return html`<div class="card">
    <h2>月度服务排行</h2>
    <label>月份
      <input type="month" value=${month} required onChange=${(e) => e.currentTarget.value && setMonth(e.currentTarget.value)} />
    </label>
    <${ProblemBox} error=${list.error} />
    <ol class="rows">
      ${list.items.map(
        (row, index) => html`<li class="row" data-testid="leader">
          <div>
            <strong>${index + 1}. ${row.real_name}</strong>
            <span class="muted">${stars(row.level)}</span>
          </div>
          <span class="counted"><b>${hours(row.minutes)}</b> 小时</span>
        </li>`,
      )}
    </ol>
    <${More} list=${list} empty="这个月还没有服务记录" />
  </div>`;
}

function Rating() {
  const communities = useOrganisations("community");
  const [chosen, setChosen] = useState(null);
  const community = chosen || communities.items[0]?.id;
  return html`<section>
    <h1>星级评定</h1>
    <form class="card" onSubmit=${(e) => e.preventDefault()}>
      <label>社区
        <select value=${community} onChange=${(e) => setChosen(e.currentTarget.value)}>
          ${communities.items.map((c) => html`<option value=${c.id}>${c.name}</option>`)}
        </select>
      </label>
    </form>
    <${ProblemBox} error=${communities.error} />
    ${community && html`<${Candidates} community=${community} /><${Leaderboard} community=${community} />`}
  </section>`;
}

export default [
  { path: "/rating", title: "星级评定", nav: "星级评定", audience: "社区工作人员和管理员", allow: forStaff, view: Rating },
];
