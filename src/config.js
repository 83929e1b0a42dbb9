// Where the site owner's config is, for every part of the widget that needs it: the
// checkout's and newsletter's forms (./widget.js) and the account form (./account.js). Each
// finds what `unticked build` compiled from it by the hash of this text.
import { Failure } from "./tree.js";

const INLINE_CONFIG = "unticked-config";

// The config's text: the inline <script type="application/json" id="unticked-config">, else
// the URL in `data-config` on the widget's own script tag (module scripts have no
// `document.currentScript`; the widget's own first should another library use the attribute).
export async function configText() {
  const inline = document.getElementById(INLINE_CONFIG);
  if (inline) return inline.textContent;
  const script = document.querySelector("script[data-config][src*=unticked]") || document.querySelector("script[data-config]");
  const url = script?.getAttribute("data-config").trim();
  if (!url) {
    throw new Failure(
      "config-missing",
      `no config: add data-config="/consent.json" to the widget's script tag, or an inline <script type="application/json" id="${INLINE_CONFIG}">`,
    );
  }
  const unreachable = (reason) => new Failure("config-unreachable", `could not load the config from ${url}: ${reason}`);
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw unreachable(e);
  }
  if (!response.ok) throw unreachable("HTTP " + response.status);
  return response.text();
}
