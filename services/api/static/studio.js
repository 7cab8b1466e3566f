// Speakerline studio: sign in with an API key, upload a recording, watch the job live, explore the result.

import { ApiError, createClient, putFile } from "./api.js";
import { followEvents } from "./sse.js";
import { colourOf, formatClock, renderTimeline } from "./timeline.js";

const KEY_STORAGE = "speakerline.apiKey";
const STEPS = ["RECEIVED", "INGESTED", "DIARIZING", "DIARIZED", "COMPLETED"];
const TERMINAL = new Set(["COMPLETED", "REJECTED", "FAILED", "DELETED"]);
// The projector's stage timestamps: a set one means the step was reached (even if the status moved past it).
const STAGE_OF_STEP = {
  RECEIVED: "received_at",
  INGESTED: "ingested_at",
  DIARIZING: "diarization_started_at",
  DIARIZED: "diarized_at",
  COMPLETED: "completed_at",
};

const $ = (id) => document.getElementById(id);

const state = {
  key: null,
  files: new Map(), // job_id → the File uploaded from this tab (played locally, no download)
  job: null, // the job on screen
  follow: null, // AbortController of the live view
  objectUrl: null,
  timeline: null,
  raf: 0,
  nextPageToken: null,
  jobsLoading: false,
  jobsAgain: false,
};

const api = createClient(() => state.key);

// ---------------------------------------------------------------- errors

function showError(err) {
  if (err?.name === "AbortError") return;
  const message = err instanceof ApiError || err instanceof Error ? err.message : String(err);
  $("error-text").textContent = message;
  $("error").hidden = false;
  if (err instanceof ApiError && err.status === 401 && state.key) signOut({ keepError: true });
}

function clearError() {
  $("error").hidden = true;
  $("error-text").textContent = "";
}

// ---------------------------------------------------------------- sign in

async function signIn(key) {
  const me = await api.get("v1/me", { key });
  state.key = key;
  sessionStorage.setItem(KEY_STORAGE, key);
  $("signed-in-as").textContent = `Signed in as ${me.producer}`;
  $("account").hidden = false;
  $("signin").hidden = true;
  $("app").hidden = false;
  $("api-key").value = "";
  refreshJobs();
}

function signOut({ keepError = false } = {}) {
  stopFollowing();
  state.key = null;
  state.files.clear();
  state.job = null;
  sessionStorage.removeItem(KEY_STORAGE);
  $("account").hidden = true;
  $("app").hidden = true;
  $("signin").hidden = false;
  $("job-panel").hidden = true;
  $("result").hidden = true;
  $("jobs").replaceChildren();
  resetPlayer();
  if (!keepError) clearError();
  $("api-key").focus();
}

// ---------------------------------------------------------------- upload

let chosenFile = null;

function chooseFile(file) {
  chosenFile = file || null;
  $("file-chosen").textContent = file ? `${file.name} (${formatBytes(file.size)})` : "No file chosen";
  $("upload-button").disabled = !file;
  $("dropzone").classList.toggle("has-file", Boolean(file));
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function setUploadProgress(fraction) {
  const percent = Math.round(fraction * 100);
  $("upload-bar").value = percent;
  $("upload-percent").textContent = `${percent} %`;
}

async function upload(event) {
  event.preventDefault();
  clearError();
  const file = chosenFile;
  if (!file) return;
  const countInput = $("num-speakers");
  if (!countInput.checkValidity()) {
    showError(new Error("The number of speakers must be a whole number from 1 to 32, or empty."));
    countInput.focus();
    return;
  }
  const body = { file_name: file.name, content_type: file.type || "application/octet-stream", size: file.size };
  if (countInput.value !== "") body.num_speakers = Number(countInput.value);

  const button = $("upload-button");
  button.disabled = true;
  $("upload-progress").hidden = false;
  $("upload-label").textContent = `Uploading ${file.name}`;
  setUploadProgress(0);
  try {
    const ticket = await api.post("v1/uploads", body);
    state.files.set(ticket.job_id, file);
    await putFile(ticket.upload_url, ticket.upload_method, ticket.upload_headers, file, setUploadProgress);
    $("upload-label").textContent = `Uploaded ${file.name}`;
    $("file").value = "";
    chooseFile(null);
    refreshJobs();
    openJob(ticket.job_id, { file_name: file.name });
    $("job-title").focus(); // the upload button went disabled: keyboard and screen-reader users land on the job
  } catch (err) {
    showError(err);
    $("upload-label").textContent = `Upload of ${file.name} failed`;
    button.disabled = !chosenFile;
  }
}

// ---------------------------------------------------------------- live job view

function stopFollowing() {
  state.follow?.abort();
  state.follow = null;
  $("connection").textContent = "";
  delete $("connection").dataset.state;
}

/** Shows a job: its last known state at once, then live updates until it reaches a terminal state. */
async function openJob(jobId, known = {}) {
  stopFollowing();
  clearError();
  state.job = { job_id: jobId, status: "PENDING", ...known };
  $("result").hidden = true;
  resetPlayer();
  $("job-panel").hidden = false;
  renderJob(state.job);
  for (const li of $("jobs").children) {
    if (li.dataset.jobId === jobId) li.dataset.current = "";
    else delete li.dataset.current;
  }
  $("job-panel").scrollIntoView({ block: "nearest" });

  const follow = new AbortController();
  state.follow = follow;
  if (TERMINAL.has(known.status)) {
    await settle(known, follow.signal);
    return;
  }
  let done = false;
  let sawEvent = false;
  const stream = new AbortController(); // ends the stream alone when the snapshot below finds the job over
  follow.signal.addEventListener("abort", () => stream.abort(), { once: true });
  const finish = (job) => {
    if (done) return;
    done = true;
    stream.abort();
    state.job = job;
    renderJob(job);
    updateListItem(job);
    settle(job, follow.signal);
  };
  // A snapshot next to the stream: the job may have ended before the stream opened.
  api
    .get(`v1/jobs/${encodeURIComponent(jobId)}`, { signal: follow.signal })
    .then((job) => {
      if (done || follow.signal.aborted) return;
      if (TERMINAL.has(job.status)) finish(job);
      else if (!sawEvent) renderJob({ ...state.job, ...job });
    })
    .catch(() => {}); // the stream reports problems itself
  try {
    await followEvents(`v1/jobs/${encodeURIComponent(jobId)}/events`, {
      headers: () => api.headers(),
      signal: stream.signal,
      isDone: () => done,
      onState: (s) => {
        $("connection").textContent = s === "connected" ? "Live" : "Reconnecting…";
        $("connection").dataset.state = s;
      },
      onEvent: (ev) => {
        if (ev.event !== "job") return;
        let job;
        try {
          job = JSON.parse(ev.data);
        } catch {
          return; // a malformed event is skipped; the next one carries the whole job again
        }
        sawEvent = true;
        if (TERMINAL.has(job.status)) {
          finish(job);
          return;
        }
        state.job = job;
        renderJob(job);
        updateListItem(job);
      },
    });
  } catch (err) {
    if (state.follow === follow && !done) showError(err);
  }
  if (state.follow === follow && done) {
    $("connection").textContent = "";
    delete $("connection").dataset.state;
  }
}

/** A terminal job: the result for COMPLETED, the reason for REJECTED/FAILED; the list shows the new status. */
async function settle(job, signal) {
  refreshJobs();
  if (job.status !== "COMPLETED") return;
  try {
    const full = await api.get(`v1/jobs/${encodeURIComponent(job.job_id)}`, { signal });
    if (signal.aborted) return;
    state.job = full;
    renderJob(full);
    await showResult(full, signal);
  } catch (err) {
    if (!signal.aborted) showError(err);
  }
}

function renderJob(job) {
  const panel = $("job-panel");
  panel.dataset.status = job.status;
  $("job-title").textContent = job.file_name || "Job";
  $("job-id").textContent = job.job_id;
  const badge = $("job-status");
  badge.textContent = job.status;
  badge.dataset.status = job.status;

  const hint = $("job-hint");
  hint.hidden = job.status !== "PENDING";
  hint.textContent = "Waiting for the uploaded file to reach the pipeline…";

  const stages = job.stages || {};
  const current = STEPS.indexOf(job.status);
  let furthest = current;
  STEPS.forEach((step, i) => {
    if (stages[STAGE_OF_STEP[step]]) furthest = Math.max(furthest, i);
  });
  const failed = job.status === "REJECTED" || job.status === "FAILED";
  for (const li of $("steps").children) {
    const i = STEPS.indexOf(li.dataset.state);
    const isCurrent = current >= 0 ? i === current : false;
    // The step reached last is "current" while the job runs; once it ended, every step it reached is done.
    li.classList.toggle("done", i < furthest || (i === furthest && TERMINAL.has(job.status)));
    li.classList.toggle("current", isCurrent && job.status !== "COMPLETED");
    li.classList.toggle("failed", failed && i === furthest + 1);
    if (isCurrent) li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
  }

  const progress = job.progress;
  const running = job.status === "DIARIZING" || (job.status === "INGESTED" && progress);
  const block = $("diarize-progress");
  if (progress && typeof progress.fraction === "number" && (running || job.status === "DIARIZED")) {
    block.hidden = false;
    const fraction = job.status === "DIARIZED" ? 1 : progress.fraction;
    $("diarize-bar").value = fraction;
    let text = `${Math.round(fraction * 100)} %`;
    if (progress.stage && job.status === "DIARIZING") text += ` · ${progress.stage}`;
    if (typeof progress.eta_s === "number" && job.status === "DIARIZING") text += ` · about ${formatEta(progress.eta_s)} left`;
    $("diarize-text").textContent = text;
  } else if (job.status === "DIARIZING") {
    block.hidden = false;
    $("diarize-bar").removeAttribute("value"); // indeterminate until the first progress report
    $("diarize-text").textContent = "starting…";
  } else {
    block.hidden = true;
  }

  const errorBox = $("job-error");
  if (failed || job.status === "DELETED") {
    errorBox.hidden = false;
    const err = job.error || {};
    $("job-error-title").textContent =
      job.status === "REJECTED" ? "The file was rejected." : job.status === "FAILED" ? "The job failed." : "The job was deleted.";
    $("job-error-message").textContent = err.message || (job.status === "DELETED" ? "Its audio and results are gone." : "");
    $("job-error-code").textContent = err.code || job.status.toLowerCase();
  } else {
    errorBox.hidden = true;
  }
}

function formatEta(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  return formatClock(seconds);
}

// ---------------------------------------------------------------- result

function resetPlayer() {
  cancelAnimationFrame(state.raf);
  state.raf = 0;
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.load();
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = null;
  state.timeline = null;
  $("timeline").replaceChildren();
}

async function showResult(job, signal) {
  const segments = (job.segments || [])
    .map((s) => ({ speaker: String(s.speaker), start: Number(s.start), end: Number(s.end) }))
    .filter((s) => Number.isFinite(s.start) && Number.isFinite(s.end) && s.end > s.start)
    .sort((a, b) => a.start - b.start);
  const summary = job.result?.summary || {};
  const listed = (summary.speakers || []).map((s) => s.speaker);
  const speakers = [...new Set([...listed, ...segments.map((s) => s.speaker)])].sort();
  const duration = Number(job.audio?.duration_s || summary.duration_s || 0);

  $("result").hidden = false;
  $("result-summary").textContent =
    `${speakers.length} speaker${speakers.length === 1 ? "" : "s"} · ${segments.length} segments · ` +
    `${formatClock(duration)} of audio`;
  state.timeline = renderTimeline($("timeline"), { segments, duration, speakers, onSeek: seek });
  renderSpeakers(summary.speakers || [], speakers, segments);

  const player = $("player");
  const file = state.files.get(job.job_id);
  if (file) {
    state.objectUrl = URL.createObjectURL(file);
    player.src = state.objectUrl;
  } else {
    try {
      const { url } = await api.get(`v1/jobs/${encodeURIComponent(job.job_id)}/audio?redirect=false`, { signal });
      if (!signal.aborted) player.src = url;
    } catch (err) {
      if (!signal.aborted) showError(err);
    }
  }
  $("result").dataset.jobId = job.job_id;
}

function renderSpeakers(rows, speakers, segments) {
  const tbody = $("speakers").tBodies[0];
  tbody.replaceChildren();
  // The summary is the reference; a segment-only speaker still gets a row computed from its segments.
  const bySpeaker = new Map(rows.map((r) => [r.speaker, r]));
  const totalSpeech = segments.reduce((sum, s) => sum + (s.end - s.start), 0) || 1;
  for (const speaker of speakers) {
    const own = segments.filter((s) => s.speaker === speaker);
    const row = bySpeaker.get(speaker) || {};
    const speech = row.speech_s ?? row.talk_time_s ?? own.reduce((sum, s) => sum + (s.end - s.start), 0);
    const share = row.share ?? speech / totalSpeech;
    const turns = row.turns ?? row.num_segments ?? own.length;
    const tr = document.createElement("tr");
    const name = document.createElement("th");
    name.scope = "row";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colourOf(speakers, speaker);
    swatch.setAttribute("aria-hidden", "true");
    name.append(swatch, speaker);
    tr.append(name, cell(formatClock(speech)), cell(`${(share * 100).toFixed(1)} %`), cell(String(turns)));
    tbody.append(tr);
  }
}

function cell(text) {
  const td = document.createElement("td");
  td.className = "num";
  td.textContent = text;
  return td;
}

function seek(t) {
  const player = $("player");
  player.currentTime = t;
  state.timeline?.setTime(t);
}

function followPlayhead() {
  const player = $("player");
  const tick = () => {
    state.timeline?.setTime(player.currentTime);
    state.raf = player.paused || player.ended ? 0 : requestAnimationFrame(tick);
  };
  player.addEventListener("timeupdate", () => state.timeline?.setTime(player.currentTime));
  player.addEventListener("seeked", () => state.timeline?.setTime(player.currentTime));
  player.addEventListener("play", () => {
    cancelAnimationFrame(state.raf);
    state.raf = requestAnimationFrame(tick);
  });
}

function download(format) {
  const job = state.job;
  if (!job) return;
  clearError();
  // The tab is opened while the click still counts as a user gesture (pop-up blockers), then sent to the signed
  // URL once the API has answered; the URL needs no Authorization header.
  const tab = window.open("about:blank", "_blank");
  if (tab) tab.opener = null;
  api
    .get(`v1/jobs/${encodeURIComponent(job.job_id)}/result?format=${encodeURIComponent(format)}&redirect=false`)
    .then(({ url }) => {
      if (tab) tab.location.href = url;
      else window.location.assign(url); // no tab allowed: download in place
    })
    .catch((err) => {
      tab?.close();
      showError(err);
    });
}

// ---------------------------------------------------------------- jobs list

async function refreshJobs({ more = false } = {}) {
  if (!state.key) return;
  if (state.jobsLoading) {
    // A refresh asked for while one runs (e.g. a job just ended) runs after it: its answer may be stale.
    if (!more) state.jobsAgain = true;
    return;
  }
  state.jobsLoading = true;
  const list = $("jobs");
  list.setAttribute("aria-busy", "true");
  try {
    let path = "v1/jobs?limit=20";
    if (more && state.nextPageToken) path += `&page_token=${encodeURIComponent(state.nextPageToken)}`;
    const key = state.key;
    const page = await api.get(path);
    if (state.key !== key) return; // signed out (or in as someone else) meanwhile: not this list any more
    if (!more) list.replaceChildren();
    for (const job of page.jobs || []) list.append(jobItem(job));
    state.nextPageToken = page.next_page_token || null;
    $("jobs-more").hidden = !state.nextPageToken;
    $("jobs-empty").hidden = list.children.length > 0;
  } catch (err) {
    showError(err);
  } finally {
    state.jobsLoading = false;
    list.removeAttribute("aria-busy");
  }
  if (state.jobsAgain) {
    state.jobsAgain = false;
    refreshJobs();
  }
}

/** Keeps the list's badge of the job on screen in step with the live view. */
function updateListItem(job) {
  const li = [...$("jobs").children].find((item) => item.dataset.jobId === job.job_id);
  if (!li || li.dataset.status === job.status) return;
  // Updated in place (not replaced) so that a focused list button keeps the focus.
  li.dataset.status = job.status;
  const badge = li.querySelector(".job-status");
  badge.dataset.status = job.status;
  badge.textContent = job.status;
  const button = li.querySelector("button");
  button.setAttribute("aria-label", button.getAttribute("aria-label").replace(/, [A-Z]+(,|$)/, `, ${job.status}$1`));
}

function jobItem(job) {
  const li = document.createElement("li");
  li.className = "job";
  li.dataset.jobId = job.job_id;
  li.dataset.status = job.status;
  if (state.job?.job_id === job.job_id) li.dataset.current = "";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "job-open";
  const name = document.createElement("span");
  name.className = "job-name";
  name.textContent = job.file_name || job.job_id;
  const status = document.createElement("span");
  status.className = "badge job-status";
  status.dataset.status = job.status;
  status.textContent = job.status;
  const when = document.createElement("time");
  when.className = "job-time";
  if (job.created_at) {
    when.dateTime = job.created_at;
    const d = new Date(job.created_at);
    when.textContent = Number.isNaN(d.getTime()) ? String(job.created_at) : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
  button.append(name, status, when);
  button.setAttribute("aria-label", `${name.textContent}, ${job.status}${when.textContent ? `, ${when.textContent}` : ""}`);
  button.addEventListener("click", () => openJob(job.job_id, job));
  li.append(button);
  return li;
}

// ---------------------------------------------------------------- wiring

function wire() {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearError();
    const key = $("api-key").value.trim();
    if (!key) return;
    const button = $("sign-in");
    button.disabled = true;
    try {
      await signIn(key);
    } catch (err) {
      showError(err);
      $("api-key").focus();
    } finally {
      button.disabled = false;
    }
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("error-dismiss").addEventListener("click", clearError);

  const input = $("file");
  input.addEventListener("change", () => chooseFile(input.files?.[0]));
  const zone = $("dropzone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
      zone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "dragend"]) zone.addEventListener(type, () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    const file = e.dataTransfer.files?.[0];
    if (file) chooseFile(file);
  });
  // A file dropped next to the zone must not make the browser navigate away from the studio.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  $("upload-form").addEventListener("submit", upload);

  $("jobs-refresh").addEventListener("click", () => refreshJobs());
  $("jobs-more").addEventListener("click", () => refreshJobs({ more: true }));
  for (const button of document.querySelectorAll("[data-format]")) {
    button.addEventListener("click", () => download(button.dataset.format));
  }
  followPlayhead();
}

// A ready link (`speakerline stack up` prints `http://127.0.0.1:8080/#key=slk_...` for a local key) signs in at once;
// the key is in the fragment, which browsers never send to a server, and leaves the address bar at once.
function keyFromLink() {
  const key = new URLSearchParams(window.location.hash.slice(1)).get("key");
  if (key) history.replaceState(null, "", window.location.pathname + window.location.search);
  return key;
}

async function start() {
  wire();
  const saved = keyFromLink() || sessionStorage.getItem(KEY_STORAGE);
  if (!saved) {
    $("signin").hidden = false;
    return;
  }
  try {
    await signIn(saved);
  } catch (err) {
    sessionStorage.removeItem(KEY_STORAGE);
    $("signin").hidden = false;
    showError(err);
  }
}

start();
