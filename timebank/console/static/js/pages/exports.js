// Staff: a period's service records of an organisation as CSV or Excel.

import * as api from "../api.js";
import { useOrganisations } from "../lookups.js";
import { field, html, ProblemBox, Progress, today, useState, useTask } from "../ui.js";
import { forStaff } from "./hours.js";

function Exports() {
  const organisations = useOrganisations();
  const { task, error, run, busy } = useTask();
  const [saved, setSaved] = useState(null);
  const submit = (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const format = event.submitter?.value || "csv";
    const query = {
      organisation_id: field(form, "organisation_id"),
      from: field(form, "from"),
      to: field(form, "to"),
      format,
    };
    run(`正在导出 ${format === "csv" ? "CSV" : "Excel"}`, (progress) =>
      api.download("/service-records/export", query, `service-records.${format}`, progress),
    ).then((file) => file && setSaved(`已下载 ${file.name}（${Math.ceil(file.size / 1024)} KB）`));
  };
  return html`<section>
    <h1>导出服务记录</h1>
    <form class="card" onSubmit=${submit}>
      <label>组织
        <select name="organisation_id" required>
          ${organisations.items.map((o) => html`<option value=${o.id}>${o.name}</option>`)}
        </select>
      </label>
      <div class="pair">
        <label>开始日期 <input name="from" type="date" required value=${today(-30)} /></label>
        <label>结束日期 <input name="to" type="date" required value=${today()} /></label>
      </div>
      <${Progress} task=${task} />
      <${ProblemBox} error=${error || organisations.error} />
      ${saved && html`<p class="notice" role="status">${saved}</p>`}
      <div class="actions">
        <button type="submit" value="csv" disabled=${busy}>下载 CSV</button>
        <button type="submit" value="xlsx" class="secondary" disabled=${busy}>下载 Excel</button>
      </div>
    </form>
  </section>`;
}

export default [
  { path: "/exports", title: "导出", nav: "导出报表", audience: "社区工作人员", allow: forStaff, view: Exports },
];
