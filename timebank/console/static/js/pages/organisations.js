// Staff and administrators: the organisations of their scope (区级 → 街道 → 社区, 社会组织).

import * as api from "../api.js";
import { kindName } from "../lookups.js";
import { html, More, ProblemBox, usePaged } from "../ui.js";
import { forStaff } from "./hours.js";

function Organisations() {
  const list = usePaged((cursor) => api.get("/organisations", { query: { cursor, limit: 50 } }), []);
  return html`<section>
    <h1>组织机构</h1>
    <${ProblemBox} error=${list.error} />
    <ul class="rows">
      ${list.items.map(
        (o) => html`<li class="row">
          <div><strong>${o.name}</strong><span class="muted">${kindName(o.kind)} · ${o.code}</span></div>
          <span class=${`badge status-${o.status}`}>${o.status === "active" ? "正常" : o.status}</span>
        </li>`,
      )}
    </ul>
    <${More} list=${list} empty="暂无组织" />
  </section>`;
}

export default [
  { path: "/organisations", title: "组织机构", nav: "组织机构", audience: "社区工作人员和管理员", allow: forStaff, view: Organisations },
];
