// The studio's HTTP client: every /v1 call carries the API key; errors become ApiError with the problem's detail.

/** An API answer that was not 2xx, carrying the RFC 9457 problem (code, detail, title, status). */
export class ApiError extends Error {
  constructor(problem, status) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = problem.code || null;
    this.problem = problem;
  }
}

/** Reads a failed response's problem document; a body that is not JSON still gives a readable message. */
export async function problemOf(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      const body = await response.json();
      if (body && typeof body === "object") return body;
    } catch {
      // fall through: an unreadable body is reported by its status line
    }
  }
  return { title: response.statusText || "Request failed", detail: `The server answered ${response.status}.` };
}

/**
 * A client bound to a key getter, so a sign-out takes effect on the next call.
 * Paths are relative ("v1/me"): the studio works wherever the API mounts it.
 */
export function createClient(getKey) {
  function headers(extra = {}) {
    const all = { Accept: "application/json", ...extra };
    const key = getKey();
    if (key) all.Authorization = `Bearer ${key}`;
    return all;
  }

  async function request(method, path, { body, key, signal } = {}) {
    const extra = body === undefined ? {} : { "Content-Type": "application/json" };
    const h = headers(extra);
    if (key) h.Authorization = `Bearer ${key}`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError({ title: "Network error", detail: "Could not reach the server. Check your connection." }, 0);
    }
    if (!response.ok) throw new ApiError(await problemOf(response), response.status);
    if (response.status === 204) return null;
    return response.json();
  }

  return {
    headers,
    get: (path, options) => request("GET", path, options),
    post: (path, body, options) => request("POST", path, { ...options, body }),
    del: (path, options) => request("DELETE", path, options),
  };
}

/**
 * PUTs a file to a signed upload URL with XMLHttpRequest (fetch has no upload progress), sending every signed
 * header. Resolves when the storage answers 2xx; onProgress gets a fraction 0..1.
 */
export function putFile(url, method, signedHeaders, file, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method || "PUT", url);
    for (const [name, value] of Object.entries(signedHeaders || {})) {
      // Browsers set Content-Length and Host themselves (they are forbidden request headers).
      if (/^(content-length|host)$/i.test(name)) continue;
      xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve();
      } else {
        const problem = { title: "Upload failed", detail: `The storage refused the upload (HTTP ${xhr.status}).` };
        reject(new ApiError(problem, xhr.status));
      }
    };
    xhr.onerror = () =>
      reject(new ApiError({ title: "Upload failed", detail: "The upload was interrupted (network or CORS)." }, 0));
    xhr.onabort = () => reject(new DOMException("Upload cancelled", "AbortError"));
    if (signal) signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}
