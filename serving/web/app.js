// The clinicians' chat page (docs/assistant.md, "Chat page"). No framework, no build step.
// Rules: data from the server is only ever set as textContent (never parsed as HTML);
// the session lives in the HttpOnly cookie (the token in the login answer is ignored);
// nothing is kept in the browser's storage; no patient data goes into the page's URL.
"use strict";

(function () {
  const STRINGS = {
    zh: {
      title: "临床数据助手",
      signInTitle: "登录",
      username: "用户名",
      password: "密码",
      totp: "动态验证码",
      signIn: "登录",
      signOut: "退出登录",
      history: "历史记录",
      historyEmpty: "还没有提问。",
      historyClear: "清空历史",
      historyClearConfirm: "确定清空您的全部历史记录？",
      placeholder: "例如：患者P1最近一次糖化血红蛋白是多少？",
      ask: "提问",
      asking: "正在查询…",
      hint: "每个数值都附有来源记录，点击引用可查看原始记录。",
      sourceTitle: "来源记录",
      close: "关闭",
      chip: "来源",
      table: "表",
      version: "版本",
      key: "主键",
      span: "引用原文",
      document: "知识库文档",
      path: "路径",
      refused: "已拒绝",
      noData: "无数据",
      modeLlm: "模型作答（引用已核验）",
      modeFallback: "模板作答（模型答案未通过核验）",
      langSwitch: "English",
      signedInAs: "已登录：",
      err: {
        "LH-SEC-001": "用户名或密码错误。",
        "LH-SEC-002": "账户已被锁定，请稍后再试或联系管理员。",
        "LH-SEC-003": "该角色需要动态验证码，请输入验证器中的当前验证码。",
        "LH-SEC-005": "会话已失效，请重新登录。",
        "LH-SEC-009": "审计记录写入失败，未返回数据。",
        "LH-SRV-003": "该记录不存在或您无权查看。",
        network: "无法连接服务。",
      },
    },
    en: {
      title: "Clinical data assistant",
      signInTitle: "Sign in",
      username: "User name",
      password: "Password",
      totp: "One-time code",
      signIn: "Sign in",
      signOut: "Sign out",
      history: "History",
      historyEmpty: "No questions yet.",
      historyClear: "Clear history",
      historyClearConfirm: "Delete all of your history?",
      placeholder: "e.g. What is the latest HbA1c of MRN P1?",
      ask: "Ask",
      asking: "Looking it up…",
      hint: "Every figure cites its source record; click a citation to see it.",
      sourceTitle: "Source record",
      close: "Close",
      chip: "source",
      table: "Table",
      version: "Version",
      key: "Key",
      span: "Cited text",
      document: "Knowledge-base document",
      path: "Path",
      refused: "Refused",
      noData: "No data",
      modeLlm: "model answer (citations verified)",
      modeFallback: "template answer (the model's answer failed verification)",
      langSwitch: "中文",
      signedInAs: "Signed in: ",
      err: {
        "LH-SEC-001": "Wrong user name or password.",
        "LH-SEC-002": "The account is locked; retry later or ask an administrator.",
        "LH-SEC-003": "This role needs a one-time code: enter the current code of your authenticator.",
        "LH-SEC-005": "Your session has ended; please sign in again.",
        "LH-SEC-009": "The audit log could not be written; no data was returned.",
        "LH-SRV-003": "That record does not exist or you may not see it.",
        network: "The service cannot be reached.",
      },
    },
  };

  const $ = (id) => document.getElementById(id);
  let lang = browserLang();
  let me = null;

  function browserLang() {
    const wanted = navigator.languages && navigator.languages.length
      ? navigator.languages : [navigator.language || "en"];
    for (const l of wanted) {
      if (/^zh\b/i.test(l)) return "zh";
      if (/^en\b/i.test(l)) return "en";
    }
    return "en";
  }

  function t(key) {
    return STRINGS[lang][key];
  }

  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) {
      node.textContent = t(node.dataset.i18n);
    }
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    }
    $("lang-switch").textContent = t("langSwitch");
    showWho();
  }

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // One call to the service. Resolves to {ok, status, data}; never throws.
  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      return { ok: false, status: 0, data: { error: { code: "network" } } };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = { error: { code: "LH-SRV-000", message: "HTTP " + response.status } };
    }
    return { ok: response.ok, status: response.status, data };
  }

  function errorText(data) {
    const e = (data && data.error) || {};
    const known = STRINGS[lang].err[e.code];
    if (known) return known;
    return (e.code ? e.code + ": " : "") + (e.message || "");
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  // --- sign-in and sign-out ---------------------------------------------------------

  function showWho() {
    $("who").textContent = me ? t("signedInAs") + me.username + " (" + me.role + ")" : "";
  }

  function showLogin(message) {
    me = null;
    showWho();
    show($("chat-view"), false);
    show($("sign-out"), false);
    show($("login-view"), true);
    $("answers").replaceChildren();
    $("history-list").replaceChildren();
    closeSource();
    const err = $("login-error");
    err.textContent = message || "";
    show(err, Boolean(message));
    $("password").value = "";
    $("username").focus();
  }

  function showChat(who) {
    me = who;
    showWho();
    show($("login-view"), false);
    show($("login-error"), false);
    show($("totp-row"), false);
    $("totp").value = "";
    show($("chat-view"), true);
    show($("sign-out"), true);
    loadHistory();
    $("question").focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const body = { username: $("username").value.trim(), password: $("password").value };
    const totp = $("totp").value.trim();
    if (totp) body.totp = totp;
    $("sign-in").disabled = true;
    const r = await api("POST", "/api/login", body);
    $("sign-in").disabled = false;
    if (r.ok) {
      $("password").value = "";
      showChat(r.data);
      return;
    }
    const code = r.data && r.data.error && r.data.error.code;
    if (code === "LH-SEC-003") {
      show($("totp-row"), true);
      $("totp").focus();
    }
    const err = $("login-error");
    err.textContent = errorText(r.data);
    show(err, true);
  }

  async function signOut() {
    await api("POST", "/api/logout");
    showLogin();
  }

  function sessionEnded(r) {
    if (r.status === 401) {
      showLogin(errorText(r.data));
      return true;
    }
    return false;
  }

  // --- asking and answers -----------------------------------------------------------

  function answerCard(question, answer, askedAt) {
    const card = make("article", "answer");
    const cited = Array.isArray(answer.citations) ? answer.citations : [];
    if (answer.refused) card.classList.add("refused");
    else if (cited.length === 0) card.classList.add("nodata");
    const head = make("div", "answer-head");
    head.append(make("p", "question", question));
    if (askedAt) head.append(make("time", "muted small", localTime(askedAt)));
    card.append(head);
    if (answer.refused) {
      card.append(make("span", "badge badge-refused",
        t("refused") + (answer.code ? " · " + answer.code : "")));
    } else if (cited.length === 0) {
      card.append(make("span", "badge badge-nodata", t("noData")));
    }
    // LLM mode (docs/assistant.md): who answered; grounded mode shows nothing.
    if (answer.mode === "llm") {
      card.append(make("span", "badge badge-mode", t("modeLlm")));
    } else if (answer.mode === "grounded-fallback") {
      card.append(make("span", "badge badge-mode",
        t("modeFallback") + (answer.fallback ? " · " + answer.fallback : "")));
    }
    const text = make("div", "sentences");
    if (answer.lang) text.lang = answer.lang === "zh" ? "zh-CN" : "en";
    const sentences = Array.isArray(answer.sentences) && answer.sentences.length
      ? answer.sentences : [{ text: answer.answer, citations: [] }];
    for (const s of sentences) {
      const line = make("p", "sentence", s.text);
      for (const citation of s.citations || []) {
        const n = cited.indexOf(citation) + 1;
        const chip = make("button", "chip", t("chip") + " " + (n || "?"));
        chip.type = "button";
        chip.title = citation;
        chip.addEventListener("click", () => openSource(citation, chip));
        line.append(" ", chip);
      }
      text.append(line);
    }
    card.append(text);
    return card;
  }

  async function ask(event) {
    event.preventDefault();
    const box = $("question");
    const question = box.value.trim();
    if (!question) return;
    const button = $("ask");
    button.disabled = true;
    button.textContent = t("asking");
    show($("ask-error"), false);
    const r = await api("POST", "/api/ask", { question });
    button.disabled = false;
    button.textContent = t("ask");
    if (sessionEnded(r)) return;
    if (!r.ok) {
      $("ask-error").textContent = errorText(r.data);
      show($("ask-error"), true);
      return;
    }
    box.value = "";
    $("answers").prepend(answerCard(question, r.data));
    loadHistory();
  }

  // --- the source record of a citation ----------------------------------------------

  function closeSource() {
    show($("source"), false);
    for (const chip of document.querySelectorAll(".chip.active")) chip.classList.remove("active");
  }

  async function openSource(citation, chip) {
    closeSource();
    chip.classList.add("active");
    const meta = $("source-meta");
    const rows = $("source-row").tBodies[0];
    meta.replaceChildren();
    rows.replaceChildren();
    show($("source-error"), false);
    show($("source"), true);
    // The citation travels URL-encoded in the API path (never in the page's own URL).
    const r = await api("GET", "/api/citations/" + encodeURIComponent(citation));
    if (sessionEnded(r)) return;
    if (!r.ok) {
      $("source-error").textContent = errorText(r.data);
      show($("source-error"), true);
      return;
    }
    const record = r.data;
    // A knowledge-base citation (kb:path:start-end): the document and the cited text.
    const fields = record.path !== undefined
      ? [["document", record.title], ["path", record.path]]
      : [
          ["table", record.table],
          ["version", record.version],
          ["key", (record.key || []).join(" | ")],
        ];
    // A span citation of a note: the cited characters [start, end) of its text.
    if (record.span) fields.push(["span", record.span_text]);
    for (const [name, value] of fields) {
      meta.append(make("dt", null, t(name)), make("dd", "source-" + name, value));
    }
    for (const [field, value] of Object.entries(record.row || {})) {
      const tr = make("tr");
      tr.dataset.field = field;
      tr.append(make("th", null, field), make("td", null, value === null ? "—" : value));
      rows.append(tr);
    }
  }

  // --- history (kept by the service, per user) ---------------------------------------

  function localTime(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(lang === "zh" ? "zh-CN" : "en-GB");
  }

  async function loadHistory() {
    const r = await api("GET", "/api/history?limit=50");
    if (sessionEnded(r)) return;
    const list = $("history-list");
    list.replaceChildren();
    const entries = (r.ok && r.data.entries) || [];
    show($("history-empty"), entries.length === 0);
    for (const entry of entries) {
      const item = make("li");
      const button = make("button", "history-item");
      button.type = "button";
      button.append(make("span", "history-q", entry.question),
        make("time", "muted small", localTime(entry.asked_at)));
      if (entry.answer && entry.answer.refused) button.classList.add("refused");
      button.addEventListener("click", () => {
        closeSource();
        $("answers").replaceChildren(answerCard(entry.question, entry.answer, entry.asked_at));
      });
      item.append(button);
      list.append(item);
    }
  }

  async function clearHistory() {
    if (!window.confirm(t("historyClearConfirm"))) return;
    const r = await api("DELETE", "/api/history");
    if (sessionEnded(r)) return;
    $("answers").replaceChildren();
    loadHistory();
  }

  // --- start ---------------------------------------------------------------------------

  async function start() {
    applyLang();
    $("login-form").addEventListener("submit", signIn);
    $("ask-form").addEventListener("submit", ask);
    $("question").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $("ask-form").requestSubmit();
      }
    });
    $("sign-out").addEventListener("click", signOut);
    $("source-close").addEventListener("click", closeSource);
    $("history-clear").addEventListener("click", clearHistory);
    $("lang-switch").addEventListener("click", () => {
      lang = lang === "zh" ? "en" : "zh";
      applyLang();
    });
    const r = await api("GET", "/api/me");
    if (r.ok) showChat(r.data);
    else showLogin();
  }

  start();
})();
