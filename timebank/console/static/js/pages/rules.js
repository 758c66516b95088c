// The rules of the region (区域规则): every rule's value in force, its shipped default and what it
// means. Region administrators change a value (with a reason, kept in the audit log) or return it
// to the default; staff read them.

import * as api from "../api.js";
import { explainAlso } from "../problems.js";
import { formatTime } from "../time.js";
import { field, html, More, ProblemBox, usePaged, useState, useTask } from "../ui.js";
import { forStaff } from "./hours.js";

const mayChange = (who) => who.kind === "admin" && who.roles.includes("region_admin");

explainAlso(
  { "rule-not-found": () => "没有这条规则，请刷新页面后重试。" },
  { value: "规则值" },
);

/** A value as people type and read it: text as is, anything else as JSON (`[100, 300]`, `true`). */
const shown = (value) => (typeof value === "string" ? value : JSON.stringify(value));

/** What was typed, as the rule's kind of value (the default's): text stays text, else JSON. */
function typed(text, example) {
  if (typeof example === "string") return text;
  try {
    return JSON.parse(text);
  } catch {
    throw new api.Problem(
      {
        type: "/problems/validation-failed",
        title: "规则值格式不正确",
        detail: "请填写数字、true/false，或用方括号写列表，如 [100, 300]。",
        errors: [{ field: "value", source: "body", message: "not JSON" }],
      },
      422,
    );
  }
}

function Edit({ rule, onSaved, onCancel }) {
  const { error, run, busy } = useTask();
  const save = (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const text = field(form, "value");
    const reason = field(form, "reason");
    run("正在保存", async () => {
      const value = typed(text, rule.default);
      return api.request("PUT", `/rules/${rule.key}`, { body: { value, reason } });
    }).then((saved) => saved && onSaved(saved));
  };
  const reset = (event) => {
    const form = event.currentTarget.form;
    const reason = field(form, "reason");
    run("正在恢复默认值", () =>
      api.request("DELETE", `/rules/${rule.key}`, { query: reason ? { reason } : {} }),
    ).then((saved) => saved && onSaved(saved));
  };
  return html`<form class="card" onSubmit=${save} data-testid="rule-edit">
    <label>新的值 <input name="value" required value=${shown(rule.value)} autocomplete="off" /></label>
    <label>修改原因 <input name="reason" required maxlength="500" placeholder="例如：区议会决定" /></label>
    <${ProblemBox} error=${error} />
    <div class="actions">
      <button type="submit" disabled=${busy}>保存</button>
      ${rule.overridden &&
      html`<button type="button" class="secondary" disabled=${busy} onClick=${reset}>恢复默认值</button>`}
      <button type="button" class="secondary" onClick=${onCancel}>取消</button>
    </div>
  </form>`;
}

function RuleRow({ rule, editable, onSaved }) {
  const [editing, setEditing] = useState(false);
  return html`<li class="row" data-testid="rule" data-key=${rule.key}>
    <div>
      <strong data-testid="rule-value">${shown(rule.value)}</strong> <small>${rule.key}</small>
      ${rule.overridden && html` <span class="badge status-attended">本区已修改</span>`}
      <span class="muted">${rule.note || "（无说明）"}</span>
      <span class="muted">默认值：${shown(rule.default)}${rule.updated_at ? ` · 更新于 ${formatTime(rule.updated_at)}` : ""}</span>
      ${editing &&
      html`<${Edit}
        rule=${rule}
        onSaved=${(saved) => (setEditing(false), onSaved(saved))}
        onCancel=${() => setEditing(false)}
      />`}
    </div>
    ${editable && !editing && html`<button class="small" onClick=${() => setEditing(true)}>修改</button>`}
  </li>`;
}

function Rules({ who }) {
  const list = usePaged((cursor) => api.get("/rules", { query: { cursor, limit: 100 } }), []);
  const [items, setItems] = useState({});
  const editable = mayChange(who);
  return html`<section>
    <h1>区域规则</h1>
    <p class="muted">
      ${editable ? "修改规则需填写原因，修改记录保存在操作日志中；修改后立即生效。" : "仅区域管理员可以修改规则。"}
    </p>
    <${ProblemBox} error=${list.error} />
    <ul class="rows">
      ${list.items.map((r) => {
        const rule = items[r.key] || r;
        return html`<${RuleRow}
          key=${rule.key}
          rule=${rule}
          editable=${editable}
          onSaved=${(saved) => setItems((old) => ({ ...old, [saved.key]: saved }))}
        />`;
      })}
    </ul>
    <${More} list=${list} empty="暂无规则" />
  </section>`;
}

export default [
  { path: "/rules", title: "区域规则", nav: "区域规则", audience: "社区工作人员和管理员", allow: forStaff, view: Rules },
];
