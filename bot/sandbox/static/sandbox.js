// The sandbox chat page. Plain JavaScript, no build step.
// Who you are comes from the address (?as=therapist), so every tab can be someone else; &chat=group
// shows the demo cohort's group chat as that person sees it.
// Bot messages carry Telegram HTML; it is rendered by building elements (never innerHTML), and only
// b, i, u, s, a, code and pre become markup: everything else is shown as the text it is.
"use strict";

(() => {
  const params = new URLSearchParams(window.location.search);
  const me = params.get("as");
  const inGroup = params.get("chat") === "group";
  const chatPath = () => `/api/chat/${encodeURIComponent(me)}${inGroup ? "/group" : ""}`;
  const $ = (id) => document.getElementById(id);

  let version = "";
  let person = null;
  let firstLoad = true;
  const rendered = new Map(); // message id -> {li, signature}
  const seenNotices = new Set();

  // ---- talking to the sandbox server -------------------------------------------------------

  async function call(path, body) {
    const options = body === undefined ? {} : {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body),
    };
    const response = await fetch(path, options);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      throw new Error((data && data.error) || `the sandbox answered ${response.status}`);
    }
    return data;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---- Telegram HTML, rendered safely ------------------------------------------------------

  const TAGS = {
    b: "b", strong: "b", i: "i", em: "i", u: "u", ins: "u", s: "s", strike: "s", del: "s",
    a: "a", code: "code", pre: "pre",
  };
  const TAG_RE = /<(\/?)([a-zA-Z][a-zA-Z0-9-]*)(\s[^<>]*)?>/g;
  const URL_RE = /\b(?:https?:\/\/|www\.)[^\s<>"]+/gi;
  const NAMED = {lt: "<", gt: ">", amp: "&", quot: "\""};

  function decodeEntities(text) {
    return text.replace(/&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);/g, (whole, name) => {
      if (NAMED[name]) return NAMED[name];
      const code = name[1] === "x" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    });
  }

  function safeUrl(raw) {
    const url = raw.trim();
    return /^(https?:\/\/|tg:\/\/|mailto:)/i.test(url) ? url : null;
  }

  function makeLink(url, label) {
    const a = document.createElement("a");
    a.href = url;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = label;
    const note = document.createElement("span");
    note.className = "visually-hidden";
    note.textContent = " (opens in a new tab)";
    a.appendChild(note);
    return a;
  }

  // Text, with bare web addresses made into links the way Telegram shows them.
  function appendText(parent, text, linkify) {
    if (!text) return;
    if (!linkify) {
      parent.appendChild(document.createTextNode(text));
      return;
    }
    let pos = 0;
    for (const match of text.matchAll(URL_RE)) {
      let url = match[0].replace(/[.,;:!?)]+$/, "");
      parent.appendChild(document.createTextNode(text.slice(pos, match.index)));
      const href = url.toLowerCase().startsWith("www.") ? `https://${url}` : url;
      parent.appendChild(makeLink(href, url));
      pos = match.index + url.length;
    }
    parent.appendChild(document.createTextNode(text.slice(pos)));
  }

  function renderTelegramHtml(parent, source) {
    const stack = [{el: parent, name: null, plain: false}];
    const top = () => stack[stack.length - 1];
    let pos = 0;
    TAG_RE.lastIndex = 0;
    let match;
    while ((match = TAG_RE.exec(source)) !== null) {
      appendText(top().el, decodeEntities(source.slice(pos, match.index)), !top().plain);
      pos = TAG_RE.lastIndex;
      const closing = match[1] === "/";
      const name = TAGS[match[2].toLowerCase()];
      if (name && !closing) {
        let el = document.createElement(name);
        if (name === "a") {
          const href = /\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')/i.exec(match[3] || "");
          const url = href ? safeUrl(decodeEntities(href[1] ?? href[2])) : null;
          if (url) {
            el.href = url;
            el.target = "_blank";
            el.rel = "noopener noreferrer";
          } else {
            el = document.createElement("span"); // a link to somewhere unsafe stays plain text
          }
        }
        top().el.appendChild(el);
        stack.push({el, name, plain: top().plain || name === "a" || name === "code" || name === "pre"});
      } else if (name && closing && stack.length > 1 && top().name === name) {
        const done = stack.pop();
        if (done.name === "a" && done.el.tagName === "A") {
          const note = document.createElement("span");
          note.className = "visually-hidden";
          note.textContent = " (opens in a new tab)";
          done.el.appendChild(note);
        }
      } else {
        appendText(top().el, match[0], false); // not Telegram markup: show it as typed
      }
    }
    appendText(top().el, decodeEntities(source.slice(pos)), !top().plain);
  }

  // ---- one message -------------------------------------------------------------------------

  function sizeText(bytes) {
    if (bytes < 1024) return `${bytes} bytes`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  function renderButtons(item) {
    const group = document.createElement("div");
    group.className = "keyboard";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Buttons under this message");
    for (const row of item.buttons) {
      const line = document.createElement("div");
      line.className = "keyboard-row";
      for (const button of row) {
        let el;
        if (button.url) {
          const url = safeUrl(button.url);
          el = url ? makeLink(url, button.text) : document.createElement("span");
          if (!url) el.textContent = button.text;
          el.classList.add("kb-button", "kb-link");
        } else {
          el = document.createElement("button");
          el.type = "button";
          el.className = "kb-button";
          el.textContent = button.text;
          if (button.unsupported) {
            el.disabled = true;
            el.title = "This kind of button does not work in the sandbox";
          } else {
            el.dataset.data = button.data;
            el.addEventListener("click", () => press(item.id, button.data, el));
          }
        }
        line.appendChild(el);
      }
      group.appendChild(line);
    }
    return group;
  }

  function renderItem(item) {
    const li = document.createElement("li");
    li.className = `msg ${item.from === "bot" ? "from-bot" : item.from === "peer" ? "from-peer" : "from-you"}`;
    li.id = `message-${item.id}`;
    const who = document.createElement("span");
    who.className = "visually-hidden";
    who.textContent = item.from === "bot" ? "The bot wrote: " : item.from === "peer" ? `${item.name} wrote: `
      : "You wrote: ";
    li.appendChild(who);

    const bubble = document.createElement("div");
    bubble.className = "bubble";
    if (item.from === "peer") {
      const name = document.createElement("div");
      name.className = "sender";
      name.setAttribute("aria-hidden", "true");
      name.textContent = item.name;
      bubble.appendChild(name);
    }
    if (item.file && item.kind === "photo") {
      const img = document.createElement("img");
      img.src = item.file.url;
      img.alt = item.text ? `Picture from the bot: ${item.text}` : "Picture from the bot";
      img.className = "photo";
      bubble.appendChild(img);
    } else if (item.file) {
      const link = document.createElement("a");
      link.href = item.file.url;
      link.setAttribute("download", item.file.name);
      link.className = "document";
      link.textContent = `📄 ${item.file.name} (${sizeText(item.file.size)}) – download`;
      bubble.appendChild(link);
    }
    if (item.text) {
      const text = document.createElement("div");
      text.className = "text";
      if (item.html) renderTelegramHtml(text, item.text);
      else appendText(text, item.text, true);
      bubble.appendChild(text);
    }
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = [item.time, item.edited ? "edited" : "", item.topic ? `in “${item.topic}”` : ""]
      .filter(Boolean).join(" · ");
    bubble.appendChild(meta);
    li.appendChild(bubble);
    if (item.buttons && item.buttons.length) li.appendChild(renderButtons(item));
    return li;
  }

  // ---- the chat ----------------------------------------------------------------------------

  function keepFocus(oldLi, newLi) {
    const active = document.activeElement;
    if (!active || !oldLi.contains(active)) return false;
    const data = active.dataset ? active.dataset.data : undefined;
    const again = data ? [...newLi.querySelectorAll("button.kb-button")].find((b) => b.dataset.data === data) : null;
    return again || true;
  }

  function applyItems(items) {
    const list = $("messages");
    const present = new Set();
    let focusLost = false;
    let focusTarget = null;
    let added = false;
    let newest = null;
    for (const item of items) {
      present.add(item.id);
      const signature = JSON.stringify(item);
      const known = rendered.get(item.id);
      if (known && known.signature === signature) continue;
      const li = renderItem(item);
      if (known) {
        const kept = keepFocus(known.li, li);
        known.li.replaceWith(li);
        if (kept instanceof HTMLElement) focusTarget = kept;
        else if (kept) focusLost = true;
      } else {
        const next = [...rendered.keys()].filter((id) => id > item.id).sort((a, b) => a - b)[0];
        if (next !== undefined) list.insertBefore(li, rendered.get(next).li);
        else list.appendChild(li);
        added = true;
        if (!newest || item.id > newest.id) newest = {id: item.id, li};
      }
      rendered.set(item.id, {li, signature});
    }
    for (const [id, known] of [...rendered]) {
      if (!present.has(id)) {
        if (known.li.contains(document.activeElement)) focusLost = true;
        known.li.remove();
        rendered.delete(id);
      }
    }
    if (focusTarget) focusTarget.focus();
    else if (focusLost) $("composer-input").focus();
    $("empty-chat").hidden = items.length > 0;
    // New replies are scrolled into view above the composer (it is sticky, so scrolling to it
    // would do nothing and a reply below the fold would look like no reply at all).
    if (added && newest) scrollToNewest(newest.li);
  }

  function scrollToNewest(li) {
    const composer = $("composer").getBoundingClientRect();
    const box = li.getBoundingClientRect();
    const room = composer.top - 8; // the part of the window above the composer
    if (box.bottom <= room && box.top >= 0) return; // already in view
    const tall = box.height > room;
    window.scrollBy({top: tall ? box.top - 8 : box.bottom - room, left: 0, behavior: "auto"});
  }

  function showNotice(text, alert) {
    const box = $("notice");
    box.textContent = alert ? `The bot says: ${text}` : text;
    box.classList.add("visible");
    clearTimeout(showNotice.timer);
    showNotice.timer = setTimeout(() => {
      box.classList.remove("visible");
      box.textContent = "";
    }, alert ? 8000 : 4000);
  }

  function applyNotices(notices) {
    for (const notice of notices) {
      if (seenNotices.has(notice.id)) continue;
      seenNotices.add(notice.id);
      if (!firstLoad) showNotice(notice.text, notice.alert);
    }
  }

  const SUGGESTIONS = {
    staff: ["/caseload", "/alerts", "/help"],
    participant: ["/help", "/settings", "I had a rough morning but I went to group.",
      "I want to kill myself tonight"],
    group: ["Small win: I took a walk after dinner.", "/thread Sleep after stopping", "I want to kill myself tonight"],
  };

  function applyPerson(p) {
    const changed = JSON.stringify(p) !== JSON.stringify(person);
    const statusChanged = person !== null && person.status !== p.status;
    person = p;
    if (!changed) return;
    if (statusChanged) loadPeople().catch(() => {}); // the list on the left shows where people are
    document.title = `${p.label} – iopbot sandbox`;
    $("chat-title").textContent = `You are ${p.name}: ${p.label}`;
    $("person-summary").textContent =
      `${p.kind === "staff" ? "Staff alias" : "Participant alias"} ${p.alias} · ${p.status} · times shown in ${p.timezone}`;
    $("person-about").textContent = p.about;
    const invite = $("invite");
    const hadFocus = invite.contains(document.activeElement);
    invite.hidden = !p.invite;
    if (p.invite) $("invite-link").textContent = p.invite.link;
    if (hadFocus && invite.hidden) $("composer-input").focus();
    const list = $("suggestion-list");
    list.replaceChildren();
    for (const text of SUGGESTIONS[inGroup ? "group" : p.kind === "staff" ? "staff" : "participant"]) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary suggestion";
      button.textContent = text;
      button.setAttribute("aria-label", `Put “${text}” in the message box`);
      button.addEventListener("click", () => {
        $("composer-input").value = text;
        $("composer-input").focus();
      });
      li.appendChild(button);
      list.appendChild(li);
    }
  }

  function applyGroup(group) {
    $("chat-title").textContent = `Group chat: ${group.title}`;
    document.title = `${group.title} (as ${person.name}) – iopbot sandbox`;
    $("invite").hidden = true;
    $("composer").hidden = !group.member;
    $("empty-chat").textContent = group.note || "No messages yet.";
  }

  function apply(data) {
    version = data.version;
    const list = $("messages");
    if (firstLoad) list.setAttribute("aria-live", "off"); // do not read out the whole history at once
    applyPerson(data.person);
    if (data.group) applyGroup(data.group);
    applyItems(data.items);
    applyNotices(data.notices);
    if (firstLoad) {
      firstLoad = false;
      setTimeout(() => list.setAttribute("aria-live", "polite"), 0);
    }
  }

  async function follow() {
    for (;;) {
      try {
        const data = await call(`${chatPath()}?since=${version}&wait=${firstLoad ? 0 : 25}`);
        $("composer-error").textContent = "";
        apply(data);
      } catch (error) {
        $("composer-error").textContent = `Lost touch with the sandbox (${error.message}). Retrying…`;
        await sleep(2000);
      }
    }
  }

  async function press(messageId, data, button) {
    const group = button.closest(".keyboard");
    group.setAttribute("aria-busy", "true");
    try {
      await call(`/api/chat/${encodeURIComponent(me)}/buttons`, {message_id: messageId, data});
    } catch (error) {
      showNotice(`That button did not work: ${error.message}`, false);
    } finally {
      group.removeAttribute("aria-busy");
    }
  }

  async function send(event) {
    event.preventDefault();
    const input = $("composer-input");
    const text = input.value;
    if (!text.trim()) {
      $("composer-error").textContent = "Type a message first.";
      return;
    }
    try {
      await call(`${chatPath()}/messages`, {text});
      input.value = "";
      $("composer-error").textContent = "";
    } catch (error) {
      $("composer-error").textContent = `Not sent: ${error.message}`;
    }
    input.focus();
  }

  // ---- people and the clock ----------------------------------------------------------------

  async function loadPeople() {
    const data = await call("/api/people");
    const list = $("people");
    list.replaceChildren();
    for (const p of data.people) {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = `/?as=${encodeURIComponent(p.key)}`;
      link.textContent = p.label;
      if (p.key === me) link.setAttribute("aria-current", "page");
      const status = document.createElement("span");
      status.className = "hint";
      status.textContent = p.status;
      li.append(link, status);
      list.appendChild(li);
    }
    return data.people;
  }

  async function refreshClock(moved) {
    try {
      const c = moved ? await call("/api/clock", {move: moved}) : await call("/api/clock");
      $("clock-now").textContent = c.text;
      const parts = [c.utc, c.ahead];
      if (c.next_checkin) parts.push(`next check-in ${c.next_checkin}`);
      if (c.next_event) parts.push(`next scheduled: ${c.next_event}`);
      $("clock-detail").textContent = parts.join(" · ");
      if (c.moved) $("clock-status").textContent = `${c.moved} Bot time is now ${c.text}.`;
    } catch (error) {
      $("clock-status").textContent = `The clock did not move: ${error.message}`;
    }
  }

  function setUpClock() {
    for (const button of document.querySelectorAll("[data-move]")) {
      button.addEventListener("click", async () => {
        if (setUpClock.moving) return;
        setUpClock.moving = true;
        const buttons = document.querySelectorAll("[data-move]");
        buttons.forEach((b) => b.setAttribute("aria-disabled", "true"));
        $("clock-status").textContent = "Moving the clock…";
        await refreshClock(button.dataset.move);
        buttons.forEach((b) => b.removeAttribute("aria-disabled"));
        setUpClock.moving = false;
      });
    }
    refreshClock();
    setInterval(() => refreshClock(), 15000);
  }

  async function start() {
    setUpClock();
    $("add-new-user").addEventListener("click", async () => {
      try {
        const created = await call("/api/people", {});
        window.location.search = `?as=${encodeURIComponent(created.key)}`;
      } catch (error) {
        $("clock-status").textContent = `Could not add a new user: ${error.message}`;
      }
    });
    let people = [];
    try {
      people = await loadPeople();
    } catch (error) {
      $("start").hidden = false;
      $("start").append(Object.assign(document.createElement("p"), {
        className: "error", textContent: `The sandbox is not answering: ${error.message}`,
      }));
      return;
    }
    if (!me || !people.some((p) => p.key === me)) {
      $("start").hidden = false;
      if (me) {
        $("start").append(Object.assign(document.createElement("p"), {
          className: "error", textContent: `Nobody called “${me}” is in this sandbox. Pick someone under “Who are you?”.`,
        }));
      }
      document.querySelector(".skip-link").hidden = true;
      return;
    }
    $("chat").hidden = false;
    const here = `/?as=${encodeURIComponent(me)}`;
    $("tab-private").href = here;
    $("tab-group").href = `${here}&chat=group`;
    $(inGroup ? "tab-group" : "tab-private").setAttribute("aria-current", "page");
    if (inGroup) {
      $("composer-label").textContent = "Message to the group";
      $("composer-hint").textContent = "Press Enter to send. Everyone in the group sees it; the bot reads it for safety.";
    }
    $("composer").addEventListener("submit", send);
    $("open-invite").addEventListener("click", async () => {
      try {
        await call(`/api/chat/${encodeURIComponent(me)}/invite`, {});
      } catch (error) {
        showNotice(`The link did not open: ${error.message}`, false);
      }
    });
    setInterval(() => loadPeople().catch(() => {}), 10000);
    follow();
  }

  start();
})();
