/**
 * Stop strings over streamed text: text that may be the start of a stop string is held back until the next
 * piece decides, so no stop string (or a prefix of one) ever reaches the caller.
 * @module
 */

/** Holds back text that may be the start of a stop string; finds the first stop string. */
export class StopScanner {
  readonly #stops: string[];
  readonly #hold: number;
  /** All text accepted so far, cut at a stop string once one is found. */
  text = "";
  #emitted = 0;

  constructor(stops: readonly string[]) {
    this.#stops = [...stops];
    this.#hold = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /** Adds text; returns what can be emitted now and whether a stop string was found. `final` releases all. */
  push(piece: string, final = false): { out: string; stopped: boolean } {
    this.text += piece;
    let end = final ? this.text.length : Math.max(this.#emitted, this.text.length - this.#hold);
    let stopped = false;
    for (const s of this.#stops) {
      const at = this.text.indexOf(s, Math.max(0, this.#emitted - s.length));
      if (at >= 0 && (!stopped || at < end)) [end, stopped] = [at, true];
    }
    if (stopped) this.text = this.text.slice(0, end);
    const out = this.text.slice(this.#emitted, end);
    this.#emitted = end;
    return { out, stopped };
  }
}
