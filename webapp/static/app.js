// musicgen-app's page: submit the form, follow the job, play its chunks as they come, list the results.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 150;
const SAMPLING_FIELDS = ["top_k", "top_p", "temperature", "cfg_coef"];
let models = [];
let current = null;  // {id, audio: AudioContext, playAt, fetched, streamed}

function showMessage(text, kind = "error") {
  $("message").textContent = text;
  $("message").className = kind;
}

function setState(state) {
  document.body.dataset.state = state;
  const busy = state === "queued" || state === "running";
  $("generate").disabled = busy;
  $("cancel").disabled = !busy;
  $("status").hidden = !busy;
}

function fillDefaults(name) {
  const model = models.find((m) => m.name === name) || models[0];
  for (const field of SAMPLING_FIELDS) $(field).value = model[field];
}

async function loadInfo() {
  const info = await (await fetch("/api/info")).json();
  models = info.models;
  for (const model of models) $("model").add(new Option(model.name, model.name));
  fillDefaults(models[0].name);
  const l = info.limits;
  $("limits").textContent = `Up to ${l.max_prompts} prompts and ${l.max_duration} s; an upload of at most ` +
    `${l.max_upload_mb} MB and ${l.max_upload_seconds} s (WAV, FLAC, OGG or MP3).`;
  setState("idle");
}

async function submit(event) {
  event.preventDefault();
  showMessage("");
  let response;
  try {
    response = await fetch("/api/jobs", { method: "POST", body: new FormData($("form")) });
  } catch (error) {
    showMessage(`The server cannot be reached: ${error}`);
    return;
  }
  const reply = await response.json().catch(() => ({ error: `The server answered ${response.status}.` }));
  if (!response.ok) {
    showMessage(reply.error || reply.detail || `The server answered ${response.status}.`);
    return;
  }
  if (current && current.audio.state !== "closed") current.audio.close();  // the last clip's stream stops
  const audio = new AudioContext();
  current = { id: reply.id, audio, playAt: 0, fetched: 0, streamed: 0 };
  document.body.dataset.streamedSeconds = "0";
  setState("queued");
  follow(current);
}

async function playChunk(job, index, sampleRate) {
  const response = await fetch(`/api/jobs/${job.id}/chunks/${index}`);
  const samples = new Float32Array(await response.arrayBuffer());
  if (job.audio.state === "closed" || samples.length === 0) return;
  const buffer = job.audio.createBuffer(1, samples.length, sampleRate);
  buffer.copyToChannel(samples, 0);
  const source = job.audio.createBufferSource();
  source.buffer = buffer;
  source.connect(job.audio.destination);
  job.playAt = Math.max(job.playAt, job.audio.currentTime + 0.05);
  source.start(job.playAt);
  job.playAt += buffer.duration;
  job.streamed += buffer.duration;
  document.body.dataset.streamedSeconds = job.streamed.toFixed(3);
}

function describeStatus(status) {
  if (status.state === "queued") {
    return status.position ? `Waiting in the queue: ${status.position} ahead of this request.` : "Starting...";
  }
  const left = status.seconds_left === null ? "" : ` · about ${Math.ceil(status.seconds_left)} s left`;
  return `Generating: ${Math.round(100 * status.progress)}%${left}`;
}

async function follow(job) {
  let status;
  try {
    status = await (await fetch(`/api/jobs/${job.id}`)).json();
  } catch (error) {
    showMessage(`Lost the server: ${error}`);
    setState("failed");
    return;
  }
  $("progress").value = status.progress;  // the status first: the chunks of this poll play after it says so
  $("status-text").textContent = describeStatus(status);
  while (job.fetched < status.chunks) await playChunk(job, job.fetched++, status.sample_rate);
  if (status.state === "queued" || status.state === "running") {
    setState(status.state);
    setTimeout(() => follow(job), POLL_MS);
    return;
  }
  setState(status.state);
  if (status.state === "done") {
    for (const result of [...status.results].reverse()) addResult(result);
    showMessage(`Done: ${status.results.length} clip(s) of ${status.results[0].seconds.toFixed(2)} s.`, "info");
  } else if (status.state === "cancelled") {
    job.audio.close();
    showMessage("Cancelled.", "info");
  } else {
    job.audio.close();
    showMessage(status.error || "The generation failed.");
  }
}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

function addResult(result) {
  const s = result.settings;
  const item = element("li", { class: "result" });
  item.append(element("h3", {}, result.prompt));
  item.append(element("audio", { controls: "", preload: "auto", src: result.wav }));
  item.append(element("img", { class: "spectrogram", src: result.spectrogram, alt: `Spectrogram of "${result.prompt}"` }));
  const links = element("p");
  links.append(element("a", { href: result.wav, download: "" }, "Download WAV"), " · ",
               element("a", { href: result.flac, download: "" }, "Download FLAC"));
  item.append(links);
  const continued = s.continue_from ? ` · continues ${s.continue_from}` : "";
  item.append(element("p", { class: "settings" },
    `model ${s.model} · ${s.duration} s · seed ${s.seed} · top-k ${s.top_k} · top-p ${s.top_p} · ` +
    `temperature ${s.temperature} · CFG ${s.cfg_coef}${continued}`));
  item.append(element("p", { class: "settings" }, "The same files from the command line (the whole batch):"));
  item.append(element("code", { class: "command" }, result.command));
  $("results").prepend(item);
}

async function cancel() {
  if (!current) return;
  $("cancel").disabled = true;
  await fetch(`/api/jobs/${current.id}/cancel`, { method: "POST" });
}

$("form").addEventListener("submit", submit);
$("cancel").addEventListener("click", cancel);
$("model").addEventListener("change", (event) => fillDefaults(event.target.value));
loadInfo();
