/**
 * Splits the text of one magnetic-stripe swipe into its tracks, by sentinel (ISO/IEC 7813 §§ 10–11,
 * ISO/IEC 7811-2 for track 3). Used by the keyboard-wedge decoder and the serial reader, which
 * both hand over one swipe as one line of text. Pure; Buffers only (card data is never a string).
 *
 * ```
 *   %B4111…^NAME^3012101…?  ;4111…=3012101…?  ;…?          [CR] LF
 *   └────── track 1 ──────┘  └──── track 2 ───┘ └ track 3 ┘
 *   start sentinels: track 1 '%', track 2 and 3 ';' (the second ';' is track 3)
 *   end sentinel '?'; a failed track is sent as '%E?' / ';E?' (MagTek, ID TECH)
 *   some readers put one LRC character after each '?': it is dropped
 * ```
 *
 * The tracks are views into the input: wiping the input wipes them.
 */
import type { Buffer } from 'node:buffer';

/** The tracks found in one swipe; a missing track is `undefined`. Views into the input. */
export interface SwipeTracks {
  /** `%…?` including its sentinels. */
  track1?: Buffer;
  /** The first `;…?`, including its sentinels. */
  track2?: Buffer;
  /** The second `;…?` (track 3 data is not used for payments; kept only to be wiped). */
  track3?: Buffer;
  /** Bytes outside any sentinel pair (noise, a reversed swipe, an LRC character). */
  strayBytes: number;
}

const PERCENT = 0x25;
const SEMICOLON = 0x3b;
const QUESTION = 0x3f;

/**
 * Finds the tracks of one swipe by their sentinels. Never throws; text without any start
 * sentinel gives no track and counts every byte as stray (the caller names it
 * `no_start_sentinel`). A track without its end sentinel runs to the next start sentinel or the
 * end of the text (the track parsers then decide whether it is readable).
 * @param text — one swipe as ASCII bytes (a trailing CR/LF is allowed).
 */
export function splitSwipeText(text: Buffer): SwipeTracks {
  const out: SwipeTracks = { strayBytes: 0 };
  let i = 0;
  let semicolons = 0;
  while (i < text.length) {
    const b = text[i];
    if (b === PERCENT || b === SEMICOLON) {
      const start = i;
      i++;
      while (
        i < text.length &&
        text[i] !== QUESTION &&
        text[i] !== PERCENT &&
        text[i] !== SEMICOLON
      )
        i++;
      if (text[i] === QUESTION) i++;
      const track = text.subarray(start, i);
      if (b === PERCENT) {
        if (out.track1 === undefined) out.track1 = track;
        else out.strayBytes += track.length;
      } else {
        semicolons++;
        if (semicolons === 1) out.track2 = track;
        else if (semicolons === 2) out.track3 = track;
        else out.strayBytes += track.length;
      }
      continue;
    }
    if (b !== 0x0d && b !== 0x0a) out.strayBytes++;
    i++;
  }
  return out;
}

/** True when a track is the reader's "could not read this track" marker `%E?` / `;E?`. */
export function isTrackError(track: Buffer | undefined): boolean {
  return track !== undefined && track.length >= 2 && track[1] === 0x45 /* E */ && track.length <= 3;
}
