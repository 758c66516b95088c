// Sign-in for every kind of account: volunteers, staff, shop operators, administrators.

import * as api from "../api.js";
import { field, html, ProblemBox, useState } from "../ui.js";

const KINDS = [
  ["staff", "社区工作人员"],
  ["volunteer", "志愿者"],
  ["shop", "门店"],
  ["admin", "管理员"],
];

function SignIn({ go }) {
  const [kind, setKind] = useState("staff");
  const [error, setError] = useState(api.endedBy);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    setBusy(true);
    setError(null);
    try {
      await api.signIn(field(form, "phone"), form.elements.namedItem("password").value, kind);
      go("/");
    } catch (problem) {
      setError(problem);
    } finally {
      setBusy(false);
    }
  };
  return html`<section class="card signin">
    <h1>时间银行 · 登录</h1>
    <form onSubmit=${submit}>
      <fieldset class="choices">
        <legend>登录身份</legend>
        ${KINDS.map(
          ([value, label]) => html`<label class=${kind === value ? "choice chosen" : "choice"}>
            <input type="radio" name="kind" value=${value} checked=${kind === value}
              onChange=${() => setKind(value)} />
            ${label}
          </label>`,
        )}
      </fieldset>
      <label>手机号
        <input name="phone" type="tel" inputmode="numeric" autocomplete="username" required
          minlength="11" maxlength="20" placeholder="11 位手机号" />
      </label>
      <label>密码
        <input name="password" type="password" autocomplete="current-password" required maxlength="128" />
      </label>
      <${ProblemBox} error=${error} />
      <button type="submit" class="wide" disabled=${busy}>${busy ? "正在登录…" : "登录"}</button>
    </form>
  </section>`;
}

export default [{ path: "/signin", title: "登录", allow: () => true, view: SignIn }];
