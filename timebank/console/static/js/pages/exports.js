// Staff: a period's service records of an organisation as CSV or Excel, and the form every
// period report of the console shares (the care bank's liability and clearing reports use it too).

import * as api from "../api.js";
import { useOrganisations } from "../lookups.js";
import { html, ProblemBox, Progress, today, useState, useTask } from "../ui.js";
import { forStaff } from "./hours.js";

/**
 * A card downloading `path` for a period as CSV or Excel: the query is the form's named fields
 * (`from`, `to` and whatever `children` add) and the chosen `format`.
 */
export function PeriodDownload({ path, name, from = today(-30), testid, error: outer, children }) {
  const { task, error, run, busy } = useTask();
  const [saved, setSaved] = useState(null);
  const submit = (event) => {
    event.preventDefault();
    const format = event.submitter?.value || "csv";
    const query = { ...Object.fromEntries(new FormData(event.currentTarget)), format };
    run(`正在导出 ${format === "csv" ? "CSV" : "Excel"}`, (progress) =>
      api.download(path, query, `${name}.${format}`, progress),
    ).then((file) => file && setSaved(`已下载 ${file.name}（${Math.ceil(file.size / 1024)} KB）`));
  };
  return html`<form class="card" onSubmit=${submit} data-testid=${testid}>
    ${children}
    <div class="pair">
      <label>开始日期 <input name="from" type="date" required value=${from} /></label>
      <label>结束日期 <input name="to" type="date" required value=${today()} /></label>
    </div>
    <${Progress} task=${task} />
    <${ProblemBox} error=${error || outer} />
    ${saved && html`<p class="notice" role="status">${saved}</p>`}
    <div class="actions">
      <button type="submit" value="csv" disabled=${busy}>下载 CSV</button>
      <button type="submit" value="xlsx" class="secondary" disabled=${busy}>下载 Excel</button>
    </div>
  </form>`;
}

function Exports() {
  const organisations = useOrganisations();
  return html`<section>
    <h1>导出服务记录</h1>
    <${PeriodDownload} path="/service-records/export" name="service-records" error=${organisations.error}>
      <label>组织
        <select name="organisation_id" required>
          ${organisations.items.map((o) => html`<option value=${o.id}>${o.name}</option>`)}
        </select>
      </label>
    <//>
  </section>`;
}

export default [
  { path: "/exports", title: "导出", nav: "导出报表", audience: "社区工作人员", allow: forStaff, view: Exports },
];
