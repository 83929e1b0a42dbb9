// The staff page (staff.html): a call-centre agent records consent given on the phone
// through the collector's `/v1/admin/assisted` (docs/phone-consent.md). The texts read out
// come from the collector itself (`GET /v1/admin/assisted?locale=…`): the very texts whose
// SHA-256 the record carries, in the caller's language.
//
// Every text from the config is set with textContent, never as HTML; the page runs under
// the collector's strict Content-Security-Policy (no inline script or style).

const ENDPOINT = "/v1/admin/assisted";
/** sessionStorage only: the token is gone when the tab is closed, and no other tab sees it. */
const TOKEN_KEY = "unticked.staff-token";
/** What an answer can be; "unasked" records nothing for the purpose. */
const ANSWERS = [
  ["unasked", "Not asked"],
  ["given", "Yes, agrees"],
  ["refused", "No, refuses"],
];

const $ = (id) => document.getElementById(id);
let script = null;

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function show(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

function clearMessages() {
  show($("result"), "");
  show($("refusal"), "");
}

/** A refusal as the collector words it: its code and its message. */
function refusal(status, body) {
  const code = body && typeof body.code === "string" ? body.code : `http-${status}`;
  const message = body && typeof body.message === "string" ? body.message : "the collector gave no reason";
  return `Refused (${code}): ${message}`;
}

async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token()}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    cache: "no-store",
  });
  let json = null;
  try {
    json = await response.json();
  } catch {
    json = null;
  }
  return { status: response.status, json };
}

function showTokenState() {
  const kept = token() !== "";
  $("token-form").hidden = kept;
  $("token-kept").hidden = !kept;
  $("call").hidden = !kept || !script;
}

/** Loads the texts to read out in `locale` (the collector's default without one). */
async function loadScript(locale) {
  const query = locale ? `?locale=${encodeURIComponent(locale)}` : "";
  const { status, json } = await call("GET", ENDPOINT + query);
  if (status !== 200) {
    if (status === 401 || status === 429) sessionStorage.removeItem(TOKEN_KEY);
    script = null;
    show($("refusal"), refusal(status, json));
    showTokenState();
    return;
  }
  script = json;
  const select = $("locale");
  if (select.options.length === 0) {
    for (const tag of script.locales) {
      const option = document.createElement("option");
      option.value = tag;
      option.textContent = tag;
      select.append(option);
    }
  }
  select.value = script.locale;
  renderPurposes();
  showTokenState();
}

/** One block per purpose on the chosen channel: the text to read out, and the answer. */
function renderPurposes() {
  const channel = $("channel").value;
  const list = $("purposes");
  list.replaceChildren();
  const purposes = script.purposes.filter((p) => p.channel === channel);
  $("no-purposes").hidden = purposes.length > 0;
  for (const purpose of purposes) {
    const block = document.createElement("div");
    block.className = "read-out";
    block.dataset.purpose = purpose.id;
    const text = document.createElement("blockquote");
    text.lang = script.locale;
    text.textContent = purpose.text;
    const meta = document.createElement("p");
    meta.className = "meta";
    meta.textContent = `${purpose.id} · version ${purpose.version} · SHA-256 ${purpose.text_sha256}`;
    const answers = document.createElement("fieldset");
    answers.className = "answers";
    const legend = document.createElement("legend");
    legend.className = "meta";
    legend.textContent = `The caller's answer (${purpose.id})`;
    answers.append(legend);
    for (const [value, words] of ANSWERS) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "radio";
      input.name = `answer.${purpose.id}`;
      input.value = value;
      input.checked = value === "unasked";
      label.append(input, document.createTextNode(words));
      answers.append(label);
    }
    block.append(text, meta, answers);
    list.append(block);
  }
}

function answersOf(wanted) {
  return [...document.querySelectorAll(`#purposes input[type=radio]:checked`)]
    .filter((input) => input.value === wanted)
    .map((input) => input.name.slice("answer.".length));
}

async function record(event) {
  event.preventDefault();
  clearMessages();
  const body = {
    identifier: $("identifier").value,
    channel: $("channel").value,
    purposes: answersOf("given"),
    refused: answersOf("refused"),
    staff: $("staff").value,
    recording: $("recording").value,
    locale: $("locale").value,
  };
  const button = $("record");
  button.disabled = true;
  try {
    const { status, json } = await call("POST", ENDPOINT, body);
    if (status === 201) {
      const states = json.recorded.map((r) => `${r.id}: ${r.state}`).join(", ");
      show($("result"), `Recorded: ${json.id} (${states})`);
      $("result").dataset.record = json.id;
      // The next call starts blank: nothing of this caller is carried over.
      $("identifier").value = "";
      $("recording").value = "";
      renderPurposes();
    } else {
      if (status === 401) sessionStorage.removeItem(TOKEN_KEY);
      show($("refusal"), refusal(status, json));
      showTokenState();
    }
  } catch (e) {
    show($("refusal"), `The collector could not be reached: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  clearMessages();
  const value = $("token").value.trim();
  $("token").value = "";
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  loadScript("");
});
$("forget-token").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  script = null;
  clearMessages();
  showTokenState();
});
$("locale").addEventListener("change", () => loadScript($("locale").value));
$("channel").addEventListener("change", renderPurposes);
$("call").addEventListener("submit", record);

showTokenState();
if (token()) loadScript("");
