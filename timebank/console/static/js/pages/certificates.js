// Staff: issue a volunteer's service certificate (志愿服务记录证明) and download its signed PDF.

import * as api from "../api.js";
import { useOrganisations } from "../lookups.js";
import { field, html, ProblemBox, Progress, today, useState, useTask } from "../ui.js";
import { forStaff } from "./hours.js";

export function VolunteerSearch({ chosen, choose }) {
  const [found, setFound] = useState(null);
  const { error, run, busy } = useTask();
  const search = (event) => {
    event.preventDefault();
    const q = field(event.currentTarget, "q");
    run("正在查找", () => api.get("/volunteers", { query: { q, limit: 20 } })).then((page) => page && setFound(page.items));
  };
  return html`<form class="card" onSubmit=${search}>
    <label>查找志愿者（姓名、手机号后四位或完整手机号）
      <input name="q" required maxlength="50" />
    </label>
    <button type="submit" class="secondary" disabled=${busy}>查找</button>
    <${ProblemBox} error=${error} />
    ${found && found.length === 0 && html`<p class="muted">没有找到</p>`}
    <ul class="rows">
      ${(found || []).map(
        (v) => html`<li class=${chosen?.id === v.id ? "row chosen" : "row"}>
          <div><strong>${v.real_name}</strong>
            <span class="muted">${v.community_name} · ${v.mobile_masked || "无手机"}</span></div>
          <button type="button" class="small" onClick=${() => choose(v)}>${chosen?.id === v.id ? "已选择" : "选择"}</button>
        </li>`,
      )}
    </ul>
  </form>`;
}

function Certificates() {
  const organisations = useOrganisations();
  const [volunteer, setVolunteer] = useState(null);
  const [issued, setIssued] = useState(null);
  const { task, error, run, busy } = useTask();
  const issue = (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const body = {
      volunteer_id: volunteer.id,
      organisation_id: field(form, "organisation_id"),
      period_from: field(form, "from"),
      period_to: field(form, "to"),
    };
    run("正在生成证明", () => api.post("/certificates", body)).then((c) => c && setIssued(c));
  };
  const pdf = () =>
    run("正在下载 PDF", (progress) =>
      api.download(`/certificates/${issued.id}/pdf`, {}, `certificate-${issued.id}.pdf`, progress),
    );
  return html`<section>
    <h1>志愿服务记录证明</h1>
    <${VolunteerSearch} chosen=${volunteer} choose=${(v) => (setVolunteer(v), setIssued(null))} />
    ${volunteer &&
    html`<form class="card" onSubmit=${issue}>
      <h2>为 ${volunteer.real_name} 开具证明</h2>
      <label>出具组织
        <select name="organisation_id" required>
          ${organisations.items.map((o) => html`<option value=${o.id}>${o.name}</option>`)}
        </select>
      </label>
      <div class="pair">
        <label>开始日期 <input name="from" type="date" required value=${today(-365)} /></label>
        <label>结束日期 <input name="to" type="date" required value=${today()} /></label>
      </div>
      <button type="submit" disabled=${busy}>生成证明</button>
    </form>`}
    <${Progress} task=${task} />
    <${ProblemBox} error=${error || organisations.error} />
    ${issued &&
    html`<div class="card notice" role="status">
      <p>已生成：${issued.record_count} 条服务记录，共 <b>${issued.total_hours}</b> 小时</p>
      <button onClick=${pdf} disabled=${busy}>下载 PDF</button>
    </div>`}
  </section>`;
}

export default [
  { path: "/certificates", title: "服务证明", nav: "服务证明", audience: "社区工作人员", allow: forStaff, view: Certificates },
];
