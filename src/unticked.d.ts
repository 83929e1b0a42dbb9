// The Unticked widget's JavaScript API, as a page sees it: the events it dispatches and the
// one global it sets. Shipped as pkg/unticked.d.ts. The widget exports nothing to import;
// a page listens:
//
//   document.addEventListener("unticked:recorded", (e) => console.log(e.detail.id));
//
// The attributes it reads: `data-unticked="KIND"` on a form (a form kind of the config, or
// `preferences` for the shop's account form), `data-unticked-token="TOKEN"` on the account
// form (the token its backend minted, docs/account-form.md), `data-unticked-slot` inside a
// form (where the choices go), `data-config` on the script tag.

/**
 * Why the widget shows no choices, or could not capture a submit (`document`), or why the
 * account form shows none or could not record a change (on that form).
 */
export interface UntickedErrorDetail {
  /**
   * `config-missing`, `config-unreachable`: no config, or it could not be fetched.
   * `compiled-missing`, `compiled-unreachable`: the config was not compiled (`unticked build`).
   * `compiled-invalid`, `compiled-format`, `compiled-mismatch`: what was compiled cannot be
   * read exactly (another format version, another config, an unknown value or member).
   * `no-webcrypto`: the page is not a secure context. `start`: the widget could not load.
   * `capture-randomness`, `capture-unknown-purpose`, `bad-argument`: a submit could not be
   * captured (what the form held waits in the outbox). `internal`: a bug.
   * The account form: `token-missing` (no `data-unticked-token`), `account-refused` (the
   * collector refused the token or the change, e.g. 401 `bad-token`), `account-unreachable`
   * (no answer, 5xx or 429).
   */
  code: string;
  /** Names the problem and what to do. */
  message: string;
}

/** A record the endpoint acknowledged (on the form, or `document` for a later delivery). */
export interface UntickedRecordedDetail {
  /** The record id, also in the form's hidden `consent.record` input. */
  id: string;
  /** The endpoint's HTTP status: 2xx, or 409 when it holds other bytes under this id. */
  status: number;
}

/**
 * A box the shopper (or a script) changed (on the form). On the account form, only the
 * customer's own changes are announced: a script's are put back.
 */
export interface UntickedChangeDetail {
  /** The purpose id. */
  purpose: string;
  checked: boolean;
  /** Whether the change was the shopper's own input (only then can it count, R1). */
  trusted: boolean;
}

/** What a page did against the rules R1–R11 (on the form, or `document`). */
export interface UntickedViolationDetail {
  /** The rule, e.g. `R1`. */
  rule: string;
  /**
   * `untrusted-tick`, `hidden-box`, `fake-box`, `box-changed`, `required-added`,
   * `disabled-added`, `submit-gated`, `submit-blocked`, `text-changed`, `loaded-twice`.
   */
  kind: string;
  /** The purpose concerned, when there is one. */
  purpose?: string;
  message: string;
}

declare global {
  interface DocumentEventMap {
    "unticked:error": CustomEvent<UntickedErrorDetail>;
    "unticked:recorded": CustomEvent<UntickedRecordedDetail>;
    "unticked:change": CustomEvent<UntickedChangeDetail>;
    "unticked:violation": CustomEvent<UntickedViolationDetail>;
  }
  interface HTMLElementEventMap {
    "unticked:error": CustomEvent<UntickedErrorDetail>;
    "unticked:recorded": CustomEvent<UntickedRecordedDetail>;
    "unticked:change": CustomEvent<UntickedChangeDetail>;
    "unticked:violation": CustomEvent<UntickedViolationDetail>;
  }
  interface Window {
    /** Set by the first copy of the widget on the page; a second copy does nothing. */
    __untickedStarted?: true;
  }
}
