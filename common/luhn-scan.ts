/**
 * Detection of PAN-shaped text, used by the log redaction guard and by the leak-sweep tests
 * (DESIGN §2, §8; PCI DSS 4.0.1 req. 3.4.1 and 3.5.1).
 *
 * A "PAN-shaped run" is a run of 13–19 ASCII digits (not part of a longer digit run) whose Luhn
 * check digit is valid (ISO/IEC 7812-1 Annex B). Separators are not bridged: `4111 1111 …`
 * written with spaces is not found here; the agent never writes PANs in any form, and the test
 * sweeps look for the literal test PANs as well.
 */

/** True when the ASCII digit string passes the Luhn check (ISO/IEC 7812-1 Annex B). */
export function luhnValidDigits(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** Every Luhn-valid maximal run of 13–19 digits in `text`. */
export function findPanShapedRuns(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/\d+/g)) {
    const run = match[0];
    if (run.length >= 13 && run.length <= 19 && luhnValidDigits(run)) found.push(run);
  }
  return found;
}

/** Replaces every PAN-shaped run in `text` with first 6, `*` for the middle, and last 4. */
export function redactPanShapedRuns(text: string): string {
  return text.replace(/\d+/g, (run) =>
    run.length >= 13 && run.length <= 19 && luhnValidDigits(run)
      ? `${run.slice(0, 6)}${'*'.repeat(run.length - 10)}${run.slice(-4)}`
      : run,
  );
}
