// Small DOM helpers: every element is built with createElement and text
// nodes, never innerHTML, so no server text can become markup and nothing
// needs an inline style or script the Content-Security-Policy would block.

// h builds an element: h("button", {type: "button", onclick: f}, "Go").
// Attributes starting with "on" become listeners; true sets a boolean
// attribute, false/null/undefined leave it out; "value" and "checked" set
// the property.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" || k === "checked") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// replace swaps el's children for the given ones.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// field is a labelled form control with a place for its error message,
// tied together with aria-describedby so screen readers read both.
export function field(label, control, hint) {
  const id = control.id || (control.id = "f-" + (control.name || Math.random().toString(36).slice(2)));
  const err = h("p", { class: "field-error", id: id + "-error", "data-error-for": control.name || id, role: "alert" });
  control.setAttribute("aria-describedby", id + "-error" + (hint ? " " + id + "-hint" : ""));
  return h("div", { class: "field" }, h("label", { for: id }, label), control,
    hint ? h("p", { class: "hint", id: id + "-hint" }, hint) : null, err);
}

// showErrors writes an API error under the fields it names and the rest
// into the form's summary; clearErrors empties them.
export function showErrors(form, err) {
  clearErrors(form);
  let shown = false;
  for (const [name, msg] of Object.entries(err.fields || {})) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) {
      slot.textContent = msg;
      const control = form.querySelector(`[name="${CSS.escape(name)}"]`);
      if (control) control.setAttribute("aria-invalid", "true");
      shown = true;
    }
  }
  const summary = form.querySelector(".form-error");
  if (summary && (!shown || err.status !== 422)) summary.textContent = err.message;
  const first = form.querySelector('[aria-invalid="true"]');
  if (first) first.focus();
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error, .form-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

export function fmtTime(t) {
  const d = new Date(t);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function fmtDateTime(t) {
  const d = new Date(t);
  return d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function fmtDistance(m) {
  return m >= 1000 ? (m / 1000).toFixed(1) + " km" : Math.round(m) + " m";
}

// distance is the great-circle distance in metres between two {lat, lng}.
export function distance(a, b) {
  const r = 6371000, rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad, dLng = (b.lng - a.lng) * rad;
  const s = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLng / 2) ** 2;
  return 2 * r * Math.asin(Math.sqrt(s));
}
