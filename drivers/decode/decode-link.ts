/**
 * The `link` trace decoder (decode-trace.ts): the PIN pad's framed link, STX payload ETX LRC /
 * ACK NAK EOT (framing.ts, architecture.md §3.1), each payload decoded as a message
 * (messages.ts, §3.2) with card data masked.
 */
import { Buffer } from 'node:buffer';
import { isAgentError } from '../../common/agent-error.js';
import { driverError } from '../errors.js';
import { computeLrc, ETX, FrameDecoder, STX } from '../link/framing.js';
import { decodeMessage } from '../pinpad/messages.js';
import { decodeTlv, decodeTrackText } from './decode-card.js';
import { addError, hexByte, maskPanDigits, type DecodedTrace } from './decode-mask.js';

/** Decodes a link trace into `out`: one line per control byte or frame, its LRC and message. */
export function decodeLink(bytes: Buffer, out: DecodedTrace): void {
  const decoder = new FrameDecoder({ interByteTimeoutMs: Number.MAX_SAFE_INTEGER });
  let frames = 0;
  // Walk by state like the decoder does, to print each frame's LRC next to the verdict.
  const lrcs: { expected: number; got: number }[] = [];
  {
    let i = 0;
    while (i < bytes.length) {
      if (bytes[i] !== STX) {
        i++;
        continue;
      }
      const etx = bytes.indexOf(ETX, i + 1);
      if (etx < 0 || etx + 1 >= bytes.length) break;
      const next = bytes.indexOf(STX, i + 1);
      if (next >= 0 && next < etx) {
        i = next;
        continue;
      }
      lrcs.push({ expected: computeLrc(bytes.subarray(i + 1, etx)), got: bytes[etx + 1] ?? 0 });
      i = etx + 2;
    }
  }
  for (const o of decoder.push(bytes, 0)) {
    switch (o.kind) {
      case 'ack':
      case 'nak':
      case 'eot':
        out.lines.push(o.kind.toUpperCase());
        break;
      case 'discarded':
        out.lines.push(`${o.count} byte(s) outside a frame, discarded`);
        break;
      case 'bad-frame': {
        const lrc = o.reason === 'lrc' ? lrcs[frames] : undefined;
        frames++;
        addError(
          out,
          driverError(
            'POS110',
            o.reason === 'lrc' && lrc !== undefined
              ? `frame ${frames}: LRC is 0x${hexByte(lrc.got)}, expected 0x${hexByte(lrc.expected)} (XOR of payload and ETX); the receiver NAKs it`
              : `frame ${frames}: bad frame (${o.reason}); the receiver NAKs it`,
            { details: { frame: frames, reason: o.reason } },
          ),
          '',
        );
        break;
      }
      case 'frame': {
        const lrc = lrcs[frames];
        frames++;
        out.lines.push(
          `frame ${frames}: ${o.payload.length} payload bytes, LRC 0x${lrc === undefined ? '??' : hexByte(lrc.got)} ok`,
        );
        decodePayload(o.payload, out);
        o.payload.fill(0);
        break;
      }
    }
  }
  if (decoder.inFrame)
    addError(
      out,
      driverError('POS110', 'the trace ends inside a frame (no ETX/LRC): capture longer'),
      '',
    );
  decoder.reset();
}

function decodePayload(payload: Buffer, out: DecodedTrace): void {
  let message;
  try {
    message = decodeMessage(payload);
  } catch (error) {
    if (isAgentError(error)) addError(out, error, '  ');
    else throw error;
    return;
  }
  switch (message.id) {
    case '21':
      out.lines.push(`  message 21 card read (clear), entry mode ${message.entryMode}`);
      if (message.track1.length > 0) decodeTrackText(message.track1, 1, out, '    ');
      if (message.track2.length > 0) decodeTrackText(message.track2, 2, out, '    ');
      if (message.emvTlv.length > 0) {
        out.lines.push(`    EMV data, ${message.emvTlv.length} bytes:`);
        decodeTlv(message.emvTlv, out, '      ');
      }
      message.track1.fill(0);
      message.track2.fill(0);
      message.emvTlv.fill(0);
      return;
    case '22':
      out.lines.push(
        `  message 22 card read (SRED), entry mode ${message.entryMode}, PAN ${maskPanDigits(Buffer.from(message.maskedPan, 'latin1'))}, expiry ${message.expiry}, KSN ${message.ksnHex}, ciphertext ${message.ciphertextHex.length / 2} bytes (not opened)`,
      );
      return;
    case '31':
      out.lines.push(
        `  message 31 PIN block, format ${message.format}, KSN ${message.ksnHex}, ${message.pinBlockHex.length / 2}-byte encrypted block (not shown)`,
      );
      return;
    default: {
      const { id, ...fields } = message;
      out.lines.push(`  message ${id} ${JSON.stringify(fields)}`);
    }
  }
}
