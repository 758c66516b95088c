// 代办: the people the caller may act for (a relative, or staff for an offline resident), and staff
// registering a resident without a phone and granting themselves the right to act for them.

import * as api from "../api.js";
import { useOrganisations } from "../lookups.js";
import { dateTime, field, html, More, ProblemBox, Progress, usePaged, useState, useTask } from "../ui.js";

const ACTIONS = [
  ["view", "查看余额与明细", true],
  ["sign_up", "活动报名", true],
  ["request_care", "申请照护", true],
  ["confirm_service", "确认服务", false],
  ["redeem", "积分兑换", false],
  ["transfer", "转赠", false],
  ["update_profile", "修改资料", false],
];
const actionName = (a) => ACTIONS.find(([key]) => key === a)?.[1] || a;

const mayRegister = (who) =>
  who.kind === "staff" && who.roles.some((r) => r === "coordinator" || r === "org_admin");
const mayAct = (who) => who.kind === "staff" || who.kind === "volunteer";

function Grants({ who, go, list }) {
  const mine = list.items.filter((g) => g.live && g.proxy_id === who.me.id);
  const start = (grant) => {
    api.actFor({ id: grant.subject_id, name: grant.subject_name });
    go("/balances");
  };
  return html`<div>
    <h2>我可以代办的人</h2>
    <${ProblemBox} error=${list.error} />
    <ul class="rows">
      ${mine.map(
        (g) => html`<li class="row" data-testid="grant">
          <div>
            <strong>${g.subject_name}</strong>${g.relationship ? html` <small>${g.relationship}</small>` : ""}
            <span class="muted">可办理：${g.actions.map(actionName).join("、")}</span>
            <span class="muted">有效至 ${dateTime(g.valid_until)}</span>
          </div>
          <button onClick=${() => start(g)}>为其代办</button>
        </li>`,
      )}
    </ul>
    <${More} list=${list} empty="暂无代办授权" />
  </div>`;
}

function Register({ who, onDone }) {
  const communities = useOrganisations("community");
  const { task, error, run, busy } = useTask();
  const [registered, setRegistered] = useState(null);
  const submit = (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const actions = ACTIONS.map(([key]) => key).filter((key) => form.elements.namedItem(`act-${key}`).checked);
    const resident = {
      real_name: field(form, "real_name"),
      id_number: field(form, "id_number").toUpperCase(),
      community_id: field(form, "community_id"),
      phone: field(form, "phone") || null,
    };
    run("正在登记", async () => {
      const person = await api.post("/volunteers", resident);
      if (actions.length) {
        const until = new Date(Date.now() + 365 * 86_400_000).toISOString();
        await api.post("/proxy-grants", {
          subject_id: person.id,
          proxy_staff_id: who.me.id,
          actions,
          valid_until: until,
          relationship: "社区工作人员",
        });
      }
      return person;
    }).then((person) => {
      if (!person) return;
      setRegistered(person);
      form.reset();
      onDone();
    });
  };
  return html`<form class="card" onSubmit=${submit}>
    <h2>登记线下居民</h2>
    <p class="muted">为没有手机或不会使用小程序的居民建立账户。</p>
    <label>姓名 <input name="real_name" required maxlength="50" /></label>
    <label>身份证号 <input name="id_number" required minlength="18" maxlength="18" autocomplete="off" /></label>
    <label>所属社区
      <select name="community_id" required>
        ${communities.items.map((c) => html`<option value=${c.id}>${c.name}</option>`)}
      </select>
    </label>
    <label>手机号（可不填） <input name="phone" type="tel" inputmode="numeric" maxlength="20" /></label>
    <fieldset>
      <legend>授权我为其代办（一年）</legend>
      ${ACTIONS.map(
        ([key, label, on]) => html`<label class="check">
          <input type="checkbox" name=${`act-${key}`} checked=${on} /> ${label}
        </label>`,
      )}
    </fieldset>
    <${Progress} task=${task} />
    <${ProblemBox} error=${error || communities.error} />
    ${registered &&
    html`<p class="notice" role="status">已登记 ${registered.real_name}（${registered.id_number_masked}）</p>`}
    <button type="submit" class="wide" disabled=${busy}>登记</button>
  </form>`;
}

function Residents({ who, go }) {
  const list = usePaged((cursor) => api.get("/proxy-grants", { query: { cursor, limit: 50 } }), []);
  return html`<section>
    <h1>代办</h1>
    <${Grants} who=${who} go=${go} list=${list} />
    ${mayRegister(who) && html`<${Register} who=${who} onDone=${list.reload} />`}
  </section>`;
}

export default [
  { path: "/residents", title: "代办", nav: "代办", audience: "社区工作人员和家属", allow: mayAct, view: Residents },
];
