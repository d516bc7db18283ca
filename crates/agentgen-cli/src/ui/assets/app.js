// The live view: reads the run's events from /api/events (server-sent events, JSON objects
// with a `kind`) and shows them; the stop button posts to /api/stop. No framework.
"use strict";
(() => {
  const token = new URLSearchParams(location.search).get("token") || "";
  const $ = (id) => document.getElementById(id);
  const transcript = $("transcript");
  const stopButton = $("stop");
  const ACTIVE = new Set(["starting", "running"]);
  let view;

  function make(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function reset() {
    view = { colors: new Map(), streaming: new Map(), calls: new Map(), turns: [], stoppable: false, state: "starting" };
    transcript.replaceChildren();
    $("turns").tBodies[0].replaceChildren();
    $("agents").tBodies[0].replaceChildren();
    $("lanes").replaceChildren();
    $("stop-reason").textContent = "";
  }

  function color(name) {
    if (!view.colors.has(name)) view.colors.set(name, "a" + (view.colors.size % 6));
    return view.colors.get(name);
  }

  const ms = (t) => (t >= 1000 ? (t / 1000).toFixed(2) + " s" : Math.round(t) + " ms");
  const num = (x, digits) => (x === undefined || x === null ? "—" : Number(x).toFixed(digits));

  function entry(source, className, t) {
    const li = make("li", className);
    if (source) {
      li.classList.add(color(source));
      li.dataset.source = source;
      li.append(make("span", "who", source));
    }
    if (t !== undefined) li.append(make("span", "meta", ms(t)));
    transcript.append(li);
    if (window.scrollY + window.innerHeight >= document.body.scrollHeight - 80) li.scrollIntoView({ block: "end" });
    return li;
  }

  function note(text, t, source) {
    const li = entry(source, "note", t);
    li.append(make("p", "content", text));
  }

  function message(m, t) {
    let li = view.streaming.get(m.source);
    view.streaming.delete(m.source);
    if (!li) {
      li = entry(m.source, "message", t);
      li.append(make("p", "content"));
    }
    li.classList.remove("streaming");
    if (m.source === "user") li.classList.add("task");
    li.querySelector(".content").textContent = m.content;
    const labels = { tool_call_summary: "tool results", handoff: "handoff", stop: "stop", structured: "structured" };
    if (labels[m.type]) li.querySelector(".meta").textContent += " · " + labels[m.type];
    if (m.usage) li.querySelector(".meta").textContent += " · " + m.usage.completion_tokens + " tokens";
  }

  function chunk(source, text, t) {
    let li = view.streaming.get(source);
    if (!li) {
      li = entry(source, "message streaming", t);
      li.append(make("p", "content"));
      view.streaming.set(source, li);
    }
    li.querySelector(".content").textContent += text;
  }

  function pretty(args) {
    try { return JSON.stringify(JSON.parse(args), null, 2); } catch (_) { return String(args); }
  }

  function toolCall(source, call, t) {
    const li = entry(source, "tool-call", t);
    const details = make("details");
    const name = call.function ? call.function.name : "?";
    const args = call.function ? call.function.arguments : "";
    const summary = make("summary", "", `called ${name}(${args.length > 60 ? args.slice(0, 57) + "…" : args})`);
    const result = make("pre", "result", "running…");
    details.append(summary, make("p", "meta", "Arguments"), make("pre", "arguments", pretty(args)), make("p", "meta", "Result"), result);
    li.append(details);
    view.calls.set(call.id, li);
  }

  function toolResult(source, r, t) {
    let li = view.calls.get(r.call_id);
    if (!li) {
      toolCall(source, { id: r.call_id, function: { name: r.name, arguments: "" } }, t);
      li = view.calls.get(r.call_id);
    }
    li.querySelector(".result").textContent = r.content;
    li.querySelector("summary").textContent += " → " + (r.content.length > 40 ? r.content.slice(0, 37) + "…" : r.content);
    if (r.is_error) li.classList.add("error");
  }

  function agentEvent(e, t) {
    switch (e.event) {
      case "message": return message(e, t);
      case "token_chunk": return chunk(e.source, e.text, t);
      case "tool_call_request": return e.calls.forEach((c) => toolCall(e.source, c, t));
      case "tool_call_result": return e.results.forEach((r) => toolResult(e.source, r, t));
      case "handoff": return note(`hands the conversation to ${e.target}`, t, e.source);
      case "speaker_selected": return note(`${e.speaker} speaks next${e.fallback ? " (the selector's answers were unusable: next in turn)" : ""}`, t);
      case "memory_query": return note(`memory added ${e.contents.length} item(s)`, t, e.source);
      case "stop": return note(`Stopped: ${e.reason}`, t);
      default: return undefined;
    }
  }

  function info(i) {
    $("title").textContent = i.title;
    document.title = `agentgen: ${i.title}`;
    view.stoppable = i.stoppable;
    const body = $("agents").tBodies[0];
    body.replaceChildren();
    for (const a of i.agents) {
      const row = make("tr");
      const name = make("td", "", a.name);
      name.className = "who " + color(a.name);
      row.append(name);
      for (const cell of [a.kind.replace("_", " "), a.backend, a.model, a.locality]) row.append(make("td", "", cell || "—"));
      body.append(row);
    }
    updateStop();
  }

  function status(s) {
    view.state = s.state;
    const el = $("run-status");
    el.textContent = s.state;
    el.dataset.state = s.state;
    if (s.reason) $("stop-reason").textContent = s.reason;
    if (!ACTIVE.has(s.state)) {
      for (const li of view.streaming.values()) {
        li.classList.remove("streaming");
        li.querySelector(".meta").textContent += " · cut off";
      }
      view.streaming.clear();
    }
    updateStop();
  }

  function updateStop() {
    const live = view.stoppable && ACTIVE.has(view.state);
    stopButton.hidden = !view.stoppable;
    stopButton.disabled = !live;
    if (!live || !view.stopping) stopButton.textContent = "Stop run";
  }

  function turn(s) {
    view.turns.push(s);
    const row = make("tr");
    const name = make("td", "who " + color(s.agent), s.agent);
    row.append(name);
    const cells = [s.turn, ms(s.start_ms), ms(s.duration_ms), s.ttft_ms === undefined ? "—" : ms(s.ttft_ms),
      num(s.tokens_per_s, 1), s.prompt_tokens, s.cached_tokens, s.completion_tokens];
    for (const c of cells) row.append(make("td", "", String(c)));
    $("turns").tBodies[0].append(row);
    lanes();
  }

  function lanes() {
    const end = Math.max(1, ...view.turns.map((s) => s.start_ms + s.duration_ms));
    const box = $("lanes");
    box.replaceChildren();
    const byAgent = new Map();
    for (const s of view.turns) {
      if (!byAgent.has(s.agent)) byAgent.set(s.agent, []);
      byAgent.get(s.agent).push(s);
    }
    for (const [agent, turns] of byAgent) {
      const lane = make("div", "lane " + color(agent));
      const track = make("div", "track");
      for (const s of turns) {
        const bar = make("div", "bar");
        bar.style.left = (100 * s.start_ms / end) + "%";
        bar.style.width = (100 * s.duration_ms / end) + "%";
        bar.title = `${agent} turn ${s.turn}: ${ms(s.duration_ms)}`;
        track.append(bar);
      }
      lane.append(make("span", "lane-name", agent), track);
      box.append(lane);
    }
  }

  function handle(m) {
    switch (m.kind) {
      case "reset": reset(); if (m.dropped) note(`${m.dropped} earlier events are not shown (the view keeps a bounded history)`); return;
      case "info": return info(m);
      case "status": return status(m);
      case "event": return agentEvent(m.event, m.t_ms);
      case "turn": return turn(m);
      case "omitted": return note(`an event of ${m.bytes} bytes was too large to show`, m.t_ms);
      default: return undefined;
    }
  }

  stopButton.addEventListener("click", async () => {
    view.stopping = true;
    stopButton.disabled = true;
    stopButton.textContent = "Stopping…";
    try {
      const resp = await fetch("/api/stop", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Agentgen-Token": token },
        body: "{}",
      });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    } catch (err) {
      $("connection").textContent = `Could not stop the run: ${err.message}`;
      view.stopping = false;
      updateStop();
    }
  });

  reset();
  const events = new EventSource("/api/events?token=" + encodeURIComponent(token));
  events.onopen = () => { $("connection").textContent = ""; };
  events.onerror = () => { $("connection").textContent = "Connection to agentgen lost; retrying…"; };
  events.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch (_) { return; }
    handle(m);
  };
})();
