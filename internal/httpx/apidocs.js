"use strict";
const resolve = (doc, node) => {
  if (node && node.$ref) {
    return node.$ref.replace(/^#\//, "").split("/").reduce((o, k) => o[k], doc);
  }
  return node;
};
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  Object.assign(e, attrs || {});
  kids.forEach(k => e.append(k));
  return e;
};
fetch("/api/v1/openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("desc").textContent = doc.info.description || "";
  const groups = {};
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      (groups[tag] = groups[tag] || []).push({ path, method, op });
    }
  }
  const root = document.getElementById("ops");
  root.textContent = "";
  for (const [tag, ops] of Object.entries(groups)) {
    root.append(el("h2", { textContent: tag }));
    for (const { path, method, op } of ops) {
      const sum = el("summary", {},
        el("span", { className: "m " + method, textContent: method }),
        el("span", { className: "p", textContent: path }),
        el("span", { className: "s", textContent: op.summary || "" }),
        el("span", { className: "lock", textContent: op.security ? "🔒" : "" }));
      const body = el("div", { className: "body" });
      if (op.description) body.append(el("p", { textContent: op.description }));
      if (op.parameters) {
        body.append(el("h4", { textContent: "Parameters" }));
        body.append(el("pre", { textContent: JSON.stringify(op.parameters.map(p => resolve(doc, p)), null, 2) }));
      }
      if (op.requestBody) {
        const c = op.requestBody.content || {};
        const media = Object.values(c)[0];
        body.append(el("h4", { textContent: "Request body" }));
        body.append(el("pre", { textContent: JSON.stringify(resolve(doc, media && media.schema), null, 2) }));
      }
      body.append(el("h4", { textContent: "Responses" }));
      for (const [code, resp] of Object.entries(op.responses || {})) {
        const r = resolve(doc, resp);
        const media = r.content && Object.values(r.content)[0];
        body.append(el("p", {}, el("b", { textContent: code + " " }), r.description || ""));
        if (media && media.schema) body.append(el("pre", { textContent: JSON.stringify(resolve(doc, media.schema), null, 2) }));
      }
      root.append(el("details", {}, sum, body));
    }
  }
}).catch(err => { document.getElementById("ops").textContent = "Could not load the API document: " + err; });
