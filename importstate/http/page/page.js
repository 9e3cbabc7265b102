// The import page: every fact it shows comes from the public REST API, polled once a second.
"use strict";

const POLL_MS = 1000;
const SHOWN_FAILURES = 100;
const PHASES = ["users", "channels", "messages"];
const FINISHED = new Set(["none", "done", "error", "canceled"]);
const STORED = { user: "importstate.userId", token: "importstate.authToken", name: "importstate.username" };

const $ = (id) => document.getElementById(id);
const view = {
  timer: null, polling: false, again: false,
  state: null, diagramState: null, selectionFor: null, failuresAt: null, samples: [],
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, name, body) {
  const headers = {
    "X-User-Id": sessionStorage.getItem(STORED.user) || "",
    "X-Auth-Token": sessionStorage.getItem(STORED.token) || "",
  };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch("/api/v1/" + name, init);
  const answer = await response.json().catch(() => ({}));
  if (response.status === 401 && name !== "login") {
    loggedOut("Your login has ended: log in again.");
  }
  if (!response.ok) {
    throw new ApiError(response.status, answer.error || answer.message || response.statusText);
  }
  return answer;
}

function notify(message) {
  const notice = $("notice");
  notice.textContent = message || "";
  notice.hidden = !message;
}

function text(id, value) {
  $(id).textContent = value;
}

function number(n) {
  return (n || 0).toLocaleString("en");
}

// --- logging in and out ---------------------------------------------------------------

async function logIn(event) {
  event.preventDefault();
  notify("");
  const body = { user: $("login-user").value, password: $("login-password").value };
  try {
    const answer = await api("POST", "login", body);
    sessionStorage.setItem(STORED.user, answer.data.userId);
    sessionStorage.setItem(STORED.token, answer.data.authToken);
    sessionStorage.setItem(STORED.name, answer.data.me.username);
  } catch (error) {
    notify(error.status === 401 ? "Wrong user or password." : error.message);
    return;
  }
  $("login-password").value = "";
  loggedIn();
}

async function logOut() {
  try {
    await api("POST", "logout");
  } catch (error) {
    // The token is dropped either way.
  }
  loggedOut("");
}

function loggedIn() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  text("who-name", "Logged in as " + sessionStorage.getItem(STORED.name));
  loadImporters();
  poll();
}

function loggedOut(message) {
  for (const key of Object.values(STORED)) sessionStorage.removeItem(key);
  clearTimeout(view.timer);
  view.timer = null;
  Object.assign(view, { state: null, diagramState: null, selectionFor: null, failuresAt: null, samples: [] });
  $("app").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  notify(message);
}

// --- the current operation ------------------------------------------------------------

// One refresh at a time: a poll asked for while one is under way runs right after it.
async function poll() {
  if (view.polling) {
    view.again = true;
    return;
  }
  view.polling = true;
  clearTimeout(view.timer);
  try {
    await refresh();
  } catch (error) {
    if (error.status !== 401) notify("Could not refresh: " + error.message);
  } finally {
    view.polling = false;
  }
  const wait = view.again ? 0 : POLL_MS;
  view.again = false;
  if (sessionStorage.getItem(STORED.token)) view.timer = setTimeout(poll, wait);
}

async function refresh() {
  const status = await api("GET", "import.status");
  const operation = status.operation || null;
  showOperation(status.state, operation);
  await Promise.all([
    showDiagram(status.state),
    showSelection(status.state, operation),
    showFailures(operation),
    showLatest(),
  ]);
}

function showOperation(state, operation) {
  const count = (operation && operation.count) || {};
  text("state", state);
  text("step", operation ? operation.status : "none");
  text("importer", operation ? operation.importerKey : "none");
  text("counts", operation
    ? `${number(count.completed)} imported, ${number(count.error)} failed, ${number(count.total)} in all`
    : "none");
  const failure = operation && operation.failure;
  $("failure").hidden = !failure;
  text("failure", failure ? "Failed: " + failure.message : "");
  showPhases(state, count);
  showRate(state, operation, count);
  $("cancel").disabled = FINISHED.has(state);
  view.state = state;
}

// Records are imported users first, then channels, then messages: the count of those done
// fills the bars in that order.
function showPhases(state, count) {
  let done = state === "importing" || state === "done" || state === "canceled" || state === "error"
    ? (count.completed || 0) + (count.error || 0) : 0;
  for (const phase of PHASES) {
    const total = count[phase] || 0;
    const here = Math.min(done, total);
    done -= here;
    const bar = $("bar-" + phase);
    bar.max = Math.max(total, 1);
    bar.value = here;
    text("figures-" + phase, `${number(here)} of ${number(total)}`);
  }
}

function showRate(state, operation, count) {
  if (state !== "importing") {
    view.samples = [];
    text("rate", "none");
    return;
  }
  const done = (count.completed || 0) + (count.error || 0);
  const now = Date.now();
  view.samples = view.samples.filter((s) => s.id === operation._id && now - s.at <= 10000);
  view.samples.push({ id: operation._id, at: now, done });
  const first = view.samples[0];
  const seconds = (now - first.at) / 1000;
  text("rate", seconds > 0 ? `${number(Math.round((done - first.done) / seconds))} records/s` : "measuring");
}

async function showDiagram(state) {
  if (state === view.diagramState) return;
  try {
    const answer = await api("GET", "importstate.diagram");
    const drawing = new DOMParser().parseFromString(answer.svg, "image/svg+xml").documentElement;
    drawing.removeAttribute("width");
    drawing.removeAttribute("height");
    drawing.setAttribute("role", "img");
    drawing.setAttribute("aria-label", `State diagram of an operation; the current state is ${answer.state}.`);
    drawing.dataset.highlighted = answer.state;
    $("diagram").replaceChildren(document.importNode(drawing, true));
    text("diagram-caption", `The operation's states; the current one, ${answer.state}, is highlighted.`);
    view.diagramState = answer.state;
  } catch (error) {
    text("diagram-caption", "No diagram: " + error.message);
  }
}

async function cancelImport() {
  notify("");
  try {
    await api("POST", "import.cancel");
  } catch (error) {
    notify(error.message);
  }
  poll();
}

// --- a new import ---------------------------------------------------------------------

async function loadImporters() {
  try {
    const importers = await api("GET", "importers.list");
    const select = $("importer-key");
    select.replaceChildren(...importers.map((importer) => new Option(importer.name, importer.key)));
  } catch (error) {
    notify("Could not list the importers: " + error.message);
  }
}

function base64Of(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^[^,]*,/, ""));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function loadFile(event) {
  event.preventDefault();
  notify("");
  const importerKey = $("importer-key").value;
  const file = $("import-file").files[0];
  const url = $("import-url").value.trim();
  if (!file && !url) {
    notify("Choose a file to upload, or give its URL.");
    return;
  }
  $("load").disabled = true;
  try {
    if (file) {
      const binaryContent = await base64Of(file);
      await api("POST", "uploadImportFile", {
        binaryContent, contentType: file.type, fileName: file.name, importerKey,
      });
    } else {
      await api("POST", "downloadPublicImportFile", { fileUrl: url, importerKey });
    }
    $("new-form").reset();
    view.selectionFor = null;
  } catch (error) {
    notify("Could not load the file: " + error.message);
  } finally {
    $("load").disabled = false;
  }
  poll();
}

async function showSelection(state, operation) {
  const section = $("selection");
  if (state !== "ready" && state !== "loading") {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  if (view.selectionFor === operation._id) return;
  const waiting = state === "loading";
  $("selection-waiting").hidden = !waiting;
  $("selection-form").hidden = waiting;
  if (waiting) return;
  const selection = await api("GET", "getImportFileData");
  if (selection.waiting) return;
  choices("users", selection.users || [], (u) => u.user_id, (u) => u.email ? `${u.username} (${u.email})` : u.username);
  choices("channels", selection.channels || [], (c) => c.channel_id, (c) => c.is_private ? `${c.name} (private)` : c.name);
  text("message-count", number(selection.message_count));
  view.selectionFor = operation._id;
}

function choices(kind, entries, idOf, labelOf) {
  const list = $(kind + "-list");
  list.replaceChildren(...entries.map((entry, n) => {
    const item = document.createElement("li");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = `${kind}-${n}`;
    box.value = idOf(entry);
    box.checked = entry.do_import !== false;
    const label = document.createElement("label");
    label.htmlFor = box.id;
    label.textContent = " " + labelOf(entry);
    item.append(box, label);
    return item;
  }));
  countChosen(kind);
}

function boxes(kind) {
  return Array.from($(kind + "-list").querySelectorAll("input[type=checkbox]"));
}

function countChosen(kind) {
  const all = boxes(kind);
  const chosen = all.filter((box) => box.checked).length;
  text(kind + "-chosen", number(chosen));
  text(kind + "-total", number(all.length));
  const every = $(kind + "-all");
  every.checked = chosen === all.length;
  every.indeterminate = chosen > 0 && chosen < all.length;
}

function chooseAll(kind) {
  const checked = $(kind + "-all").checked;
  for (const box of boxes(kind)) box.checked = checked;
  countChosen(kind);
}

function picked(kind) {
  const all = boxes(kind);
  const chosen = all.filter((box) => box.checked).map((box) => box.value);
  return chosen.length === all.length ? { all: true } : { list: chosen };
}

async function startImport(event) {
  event.preventDefault();
  notify("");
  $("start").disabled = true;
  try {
    await api("POST", "startImport", { input: { users: picked("users"), channels: picked("channels") } });
  } catch (error) {
    notify("Could not start: " + error.message);
  } finally {
    $("start").disabled = false;
  }
  poll();
}

// --- failed records and the latest operations -----------------------------------------

async function showFailures(operation) {
  const at = operation ? `${operation._id} ${operation._updatedAt}` : "";
  if (at === view.failuresAt) return;
  const failures = operation ? (await api("GET", "importstate.failures")).failures : [];
  const rows = failures.slice(0, SHOWN_FAILURES).map((record) => {
    const row = document.createElement("tr");
    const data = document.createElement("code");
    data.textContent = JSON.stringify(record.data);
    row.append(cell(record.dataType), cell(data), cell(record.errors.map((e) => e.message).join("; ")));
    return row;
  });
  $("failures-table").querySelector("tbody").replaceChildren(...rows);
  $("failures-table").hidden = !failures.length;
  text("failures-none", failures.length > SHOWN_FAILURES
    ? `${number(failures.length)} failed; the first ${SHOWN_FAILURES} are shown.`
    : failures.length ? `${number(failures.length)} failed.` : "None.");
  const link = $("failures-download");
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.hidden = !failures.length;
  link.href = failures.length
    ? URL.createObjectURL(new Blob(failures.map((r) => JSON.stringify(r) + "\n"), { type: "application/x-ndjson" }))
    : "#";
  view.failuresAt = at;
}

function cell(content) {
  const td = document.createElement("td");
  td.append(content);
  return td;
}

async function showLatest() {
  let operations;
  try {
    operations = await api("GET", "getLatestImportOperations");
  } catch (error) {
    if (error.status !== 403) throw error;
    $("latest-denied").hidden = false;
    $("latest-table").hidden = true;
    return;
  }
  $("latest-denied").hidden = true;
  $("latest-table").hidden = false;
  $("latest-table").querySelector("tbody").replaceChildren(...operations.map((op) => {
    const row = document.createElement("tr");
    const count = op.count || {};
    row.append(cell(op._id), cell(op.importerKey), cell(op.status),
      cell(`${number(count.completed)} of ${number(count.total)}, ${number(count.error)} failed`),
      cell(new Date(op._updatedAt).toLocaleString("en")));
    return row;
  }));
}

// --- wiring ---------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  $("cancel").addEventListener("click", cancelImport);
  $("new-form").addEventListener("submit", loadFile);
  $("selection-form").addEventListener("submit", startImport);
  for (const kind of ["users", "channels"]) {
    $(kind + "-all").addEventListener("change", () => chooseAll(kind));
    $(kind + "-list").addEventListener("change", () => countChosen(kind));
  }
  if (sessionStorage.getItem(STORED.token)) loggedIn();
});
