/**
 * The agent's start-up as named steps (issue 15): each step is run in order, logged by its name,
 * and registers its undo; a step that fails is logged with its name and the steps already started
 * are undone in reverse, so a failed start leaves no timer, socket or open database behind and the
 * process can exit. The same undos, in the same order, stop a running agent.
 */
import type { Logger } from './logger.js';

/**
 * How long one start-up step took (issue 9 §4: start-up must not grow with history; these show
 * which step does). `wallMs` includes waits (a PIN pad open, a listen); `cpuMs` is this process's
 * user + system CPU time over the step (`process.cpuUsage()`), which other processes on a busy
 * machine do not inflate.
 */
export interface StepTiming {
  step: string;
  /** Wall-clock time of the step, ms. */
  wallMs: number;
  /** CPU time of the whole process during the step (user + system), ms. */
  cpuMs: number;
}

/**
 * Runs start-up steps and keeps their undos. Not reusable: after {@link unwind} the steps are
 * gone.
 */
export class StartUp {
  readonly #logger: Logger;
  readonly #undos: Array<{ step: string; undo: () => unknown }> = [];
  readonly #timings: StepTiming[] = [];

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * Runs step `name`: `run` does the work and returns what later steps need; `undo`, when given,
   * is registered once `run` succeeded and is called with its result by {@link unwind}.
   *
   * @throws whatever `run` throws, unchanged (its code is the one to report), after logging
   *   `start-up step "<name>" failed` with the step's name. The caller unwinds.
   */
  async step<T>(name: string, run: () => T | Promise<T>, undo?: (value: T) => unknown): Promise<T> {
    let value: T;
    const wall0 = performance.now();
    const cpu0 = process.cpuUsage();
    try {
      value = await run();
    } catch (error) {
      this.#logger.error(
        { step: name, err: error },
        `start-up step "${name}" failed; undoing the steps already started`,
      );
      throw error;
    }
    const cpu = process.cpuUsage(cpu0);
    const timing: StepTiming = {
      step: name,
      wallMs: Math.round((performance.now() - wall0) * 100) / 100,
      cpuMs: Math.round((cpu.user + cpu.system) / 10) / 100,
    };
    this.#timings.push(timing);
    if (undo !== undefined) this.#undos.push({ step: name, undo: () => undo(value) });
    this.#logger.debug(timing, 'start-up step done');
    return value;
  }

  /** The steps run so far, in order, with their wall and CPU times (a copy). */
  timings(): StepTiming[] {
    return this.#timings.map((t) => ({ ...t }));
  }

  /**
   * Undoes every step that succeeded, last first; an undo that fails is logged with its step's
   * name and does not stop the others. A second call has nothing left to undo.
   */
  async unwind(): Promise<void> {
    for (const { step, undo } of this.#undos.splice(0).reverse()) {
      try {
        await undo();
      } catch (error) {
        this.#logger.warn({ step, err: error }, `stopping start-up step "${step}" failed`);
      }
    }
  }
}
