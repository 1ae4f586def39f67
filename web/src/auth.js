// Sign in and sign up, each error beside the field it concerns.
import { api, saveSession } from "./api.js";
import { clearErrors, field, h, showErrors } from "./dom.js";

export function authScreen(mode, { onSignedIn, go }) {
  const signup = mode === "signup";
  const email = h("input", { name: "email", type: "email", autocomplete: "email", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: signup ? "new-password" : "current-password", required: true });
  const name = signup ? h("input", { name: "name", autocomplete: "name", required: true }) : null;
  const role = signup
    ? h("fieldset", { class: "role" }, h("legend", {}, "I want to"),
      h("label", {}, h("input", { type: "radio", name: "role", value: "rider", checked: true }), " ride"),
      h("label", {}, h("input", { type: "radio", name: "role", value: "driver" }), " drive"),
      h("p", { class: "field-error", "data-error-for": "role", role: "alert" }))
    : null;
  const submit = h("button", { type: "submit", class: "primary" }, signup ? "Create account" : "Sign in");
  const form = h("form", { class: "card auth", novalidate: true },
    h("h1", {}, signup ? "Create your LastMile account" : "Sign in to LastMile"),
    signup ? field("Name", name) : null,
    field("Email", email),
    field("Password", password, signup ? "At least 8 characters." : null),
    role,
    h("p", { class: "form-error", role: "alert" }),
    submit,
    h("p", {}, signup ? "Have an account? " : "New here? ",
      h("a", { href: signup ? "/signin" : "/signup", onclick: (e) => { e.preventDefault(); go(signup ? "/signin" : "/signup"); } },
        signup ? "Sign in" : "Create an account")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const body = { email: email.value.trim(), password: password.value };
    const missing = {};
    if (signup) {
      body.name = name.value.trim();
      body.role = form.querySelector('input[name="role"]:checked').value;
      if (!body.name) missing.name = "Enter your name.";
    }
    if (!body.email) missing.email = "Enter your email address.";
    if (!body.password) missing.password = "Enter your password.";
    if (Object.keys(missing).length) {
      showErrors(form, { fields: missing, status: 422, message: "" });
      return;
    }
    submit.disabled = true;
    try {
      const res = await api("POST", signup ? "/auth/signup" : "/auth/login", body, { quiet401: true });
      saveSession(res.token, res.user);
      onSignedIn();
    } catch (err) {
      if (!signup && err.status === 401) {
        err.fields = { password: "Wrong email or password." };
        err.status = 422;
      } else if (signup && err.status === 409) {
        err.fields = { email: err.message || "An account with this email already exists." };
        err.status = 422;
      } else if (err.status === 429) {
        err.message = `Too many attempts. Try again in ${err.retryAfter || "a few"} seconds.`;
      }
      showErrors(form, err);
    } finally {
      submit.disabled = false;
    }
  });
  return h("section", { class: "auth-wrap" }, form);
}
