import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { compressSync as snappyCompressSync } from 'snappy';
import { describe, expect, it } from 'vitest';
import {
  COMPRESSION_CODECS,
  type CompressionCodec,
  CompressionError,
  codecAttributeBits,
  codecOfAttributes,
  compressRecords,
  decompressRecords,
} from '../../../src/storage/record-batch/compression.js';

const COMPRESSED: readonly CompressionCodec[] = ['gzip', 'snappy', 'lz4', 'zstd'];

/** Deterministic JSON-lines text: the plaintext of the foreign fixtures below is rebuilt from it. */
function jsonLines(size: number, seed: number): Buffer {
  let state = seed >>> 0;
  const next = (n: number): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % n;
  };
  const events = ['click', 'view', 'purchase', 'logout', 'login'];
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const line = `{"id":${i},"user":"user-${next(500)}","event":"${events[next(events.length)]}","ts":${1_700_000_000_000 + i * 37},"score":${next(10_000) / 100}}\n`;
    parts.push(line);
    length += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, size);
}

/** 140,000 bytes: more than two 64 KiB lz4 blocks, so linked blocks reach back into earlier ones. */
const FIXTURE_TEXT = Buffer.alloc(140_000, jsonLines(2000, 7));
const FIXTURE_SMALL_TEXT = jsonLines(600, 3);

/*
 * Compressed by other implementations, base64. Made once with: lz4 1.9.4 and zstd 1.5.4 (the
 * reference C command-line tools), GNU gzip, snappyjs 0.7 (what kafkajs-snappy writes) and
 * kafkajs-lz4 1.2.1 (the `lz4` npm package, what kafkajs users write):
 *   lz4Linked          lz4 -BD -B4 --content-size  FIXTURE_TEXT   linked 64 KiB blocks, content size and checksum
 *   lz4JavaShaped      lz4 -BI -B4 --no-frame-crc FIXTURE_TEXT   FLG 0x60 BD 0x40: the header Java and librdkafka write
 *   lz4BlockChecksums  lz4 -BI -B7 -BX            FIXTURE_TEXT   4 MiB blocks, block and content checksums
 *   kafkajsLz4         kafkajs-lz4 compress       FIXTURE_TEXT   4 MiB blocks, content checksum
 *   zstdStreamed       cat | zstd                 FIXTURE_TEXT   no content size in the frame header, as zstd-jni streams write
 *   zstdTwoFrames      zstd of bytes 0-299, then zstd of the rest of FIXTURE_SMALL_TEXT, concatenated
 *   gzipCli            gzip -c file               FIXTURE_SMALL_TEXT (header with a file name and mtime)
 *   snappyjsRaw        snappyjs.compress          FIXTURE_SMALL_TEXT (one raw snappy block, no framing)
 */
const FIXTURES = {
  lz4Linked: [
    'BCJNGExA4CICAAAAAAD9uAMAAPEAeyJpZCI6MCwidXNlciI6BwD2Ei0zOTgiLCJldmVudCI6InB1cmNoYXNlIiwidHMiOjE3MAEA8gEsInNjb3JlIjoxNi43Nn0KTwAaMU8AJzUxTgBe',
    'bG9naW5LACUzN0sAVDIzLjg5SwAaMksAPzQ0MEwADyU3NEwARTUxLjiXABozTAAoMjSYAE12aWV3lwA1MTExSwBUNDcuNTWXABs0SwAYMTEBXmNsaWNrTAAlNDhMAEU5OC4xlwAaNUwA',
    'KDQxlwBubG9nb3V0TQAlODVNAFQ4Ni40MZkAGjZNACgzNJkAD3wBAzUyMjJMAEQ2LjU0SwAbN0sAJzkzewEPFQIGNTI1OU4ARTk3LjczARs4TwAnMjZPAA+aAAQmOTZMAASXABo5SAA6',
    'MTE1SAAPLwEBNTMzM0kARTYzLjAvASoxME4AFzRMAA8SAgI2MzcwSgA1MC4yxgEbMfUCKDE2mAAPTAACJzQw9QI1Ny45KwEbMfYCNzE4MpgAD3sBBiY0NPkCRTE2LjbKARsx+gIYNsoB',
    'D5sAAxY4+QInMjhgAhsx+gIZMWECD5sABiY1Mf0CJzUylAMbMf4CHzM3AQ8mNTX8AkY5MS4xzQEL/QIYNGICD+cAAiY1OfsCRDExLjhkAhsx/AIYN8wBD98DAyY2MvgCRTQ5LjTCBBsx',
    '+QIPwwQRJjY2+QJGMjQuM8oBC/4CLzg1GQIRJjcw/wJUMTkuMjPoABsy/wIfMV4FDyk3NAEDJTcyTAALAQMnNDebAA80AQMmNzcBA0U4OS42ygEbMgEDGDfKAQ9MAAMmODH9Aic5OTMB',
    'KjIz4wM3MTg5mQAPFwICJjg1/gInMzPEBBsy/gIoMzcxBA/FBAMmODj7AkU0NC4zMgQbMvsCKDQ2MgEP+QUEJjky/QInNTVnAhIy/QICgQcL1wEP0Af/////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '//////////////////////////tQZCI6MjARAQAAESzy/wT5/w8A+v//////////////////////////////////////////////////////////////////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '///////////////////////////////////////////////////////////////////////////////////////////////////////////////////aUCJpZCI61wIAAKExNCwidXNl',
    'ciI6BwDzEi0xNDgiLCJldmVudCI6InB1cmNoYXNlIiwidHMiOjE3MAEA+gw1MTgsInNjb3JlIjo1Mi44Nn0KeyJpZCI6MTVQADczNjVQAE52aWV3TAAlNTVMAFU5MS4xMUwAGjZMAC80',
    'NksADiU5MksARTExLjhKABo3SgAYN5UAXWNsaWNrlgA1NjI5SwBVNDkuNDlMABo4TAA3NDQwlwBebG9naW5NACU2Nk0AVTI0LjM0TQAaOU0AJzg1TAAPfgEGNTcwM08AVDE5LjIzTwAq',
    'MjBPAB8xmwAPNTc0MEwAVTYwLjcyTAAaMUwAJzQ3mwAPNAEDNTc3N0wARTg5LjbKASoyMkwAGDfKAQ9MAAM1ODE0TAAnOTkzASoyM0wANzE4OZkAD2ICAjU4NTFMAFUzMy43NeQAC/4C',
    'NzM3NEwAD8wBAyY4OPsCRTQ0LjP7Ahsy+wIoNDYyAW1sb2dvdXQaAiY5Mv0CJzU1ZwISMv0CAlYDC9cBLzM5pQMSJjAw2wFFMTYuN6oAC9oBLzUx9QAOJjAz2gFFMjMuOA4DC9kBDw0D',
    'ESYwN9oBJzUxPAQL2QEoMjSYAA/ZAQImMTHZAUU0Ny412QEL2AEoMjExAQ9xAgMmMTTYAUU5OC4xLgEM1wEYMZcAD9cBBCYxONcBRTg2LjQKAwLWAQVvBRkzbwUPcQIDJjIy1QQ1Ni41',
    'PAQL1AQ3MzkzxwEPPAQGJjI12AQnOTcMAwvXBCgzMqQDD5oABBY51wQUOVQDC9IEKDEx0wQPLwEEJjMz0QRFNjMuMC8BGzH6AgifAw8SAgImMzf0AkU2MC4yxgEbMfUCHzGZBg8nNDD1',
    'AjU3LjleAhsx9gI/MTgyewERJjQ0+QJFMTYuNsoBGzH6Ahg2ygEP5wACJjQ4+QInMjhgAg/QB////////////////////////////////////xNQLCJ1c2UAAAAAMIXPmw==',
  ],
  lz4JavaShaped: [
    'BCJNGGBAgr8DAADxAHsiaWQiOjAsInVzZXIiOgcA9hItMzk4IiwiZXZlbnQiOiJwdXJjaGFzZSIsInRzIjoxNzABAPIBLCJzY29yZSI6MTYuNzZ9Ck8AGjFPACc1MU4AXmxvZ2luSwAl',
    'MzdLAFQyMy44OUsAGjJLAD80NDBMAA8lNzRMAEU1MS44lwAaM0wAKDI0mABNdmlld5cANTExMUsAVDQ3LjU1lwAbNEsAGDExAV5jbGlja0wAJTQ4TABFOTguMZcAGjVMACg0MZcAbmxv',
    'Z291dE0AJTg1TQBUODYuNDGZABo2TQAoMzSZAA98AQM1MjIyTABENi41NEsAGzdLACc5M3sBDxUCBjUyNTlOAEU5Ny43MwEbOE8AJzI2TwAPmgAEJjk2TAAElwAaOUgAOjExNUgADy8B',
    'ATUzMzNJAEU2My4wLwEbMfoCFzRMAA8SAgI2MzcwSgA1MC4yxgEAKgIIRAMoMTaYAA9MAAInNDD1AjU3LjkrARsx9gI/MTgykAMRJjQ0+QJFMTYuNsoBGzH6Ahg2ygEPmwADFjj5Aicy',
    'OGACGzH6AhkxYQIPFgIGJjUx/QInNTKUAxsx/gIfMzcBDyY1NfwCRjkxLjHNAQv9Ahg0YgIP5wACJjU5+wJEMTEuOGQCGzH8Ahg3zAEP3wMDJjYy+AJFNDkuNMIEAPoACBkCD8MEESY2',
    'NvkCRjI0LjPKAQv+Ahg4mQAPfgEGJjcw/wJUMTkuMjPoABsy/wIfMV4FDyk3NAEDJTcyTAAL9gUnNDe0Ag80AQMmNzcBA0U4OS42ygEAkgQINAEYN8oBD0wAAxA4mgIDjQYnOTkzARsy',
    '/QI3MTg5mQAPFwICJjg1/gInMzPEBBsy/gIoMzcxBA/FBAMmODj7AkU0NC4zMgQbMvsCKDQ2MgEP+QUEEDk2AAPnACc1NWcCEjL9AgKBBwvXAQ/QB///////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '////////////////////////+1BkIjoyMMUDAACBLCJ1c2VyIjoHAPMOLTEwIiwiZXZlbnQiOiJsb2dpbiIsInRzIjoxNzABAPoMNzQwLCJzY29yZSI6NjAuNzJ9CnsiaWQiOjIxTAAn',
    'NDdMAF5jbGlja0wAJTc3TABVODkuNjFMABoyTAAvNzZMAA41ODE0TABVOTkuMzRMABozTAA3MTg5TQBNdmlld5gANTg1MUwAVTMzLjc1TAAaNEwANzM3NEwADzEBAzU4ODhNAFU0NC4z',
    'Nk0AGjVNACg0NjIBbWxvZ291dJsANTkyNU4AVTU1LjQ5TgARNk4AAowBETAMAAXXATczOTinAI1wdXJjaGFzZVwAJjAw2wFFMTYuN6oAC9oBJzUxTgAP9QADJjAz2gFGMjMuOKcACpoA',
    'LzQ0cgIPJjA32gFFNTEuOJcAC9kBKDI0mAAP2QECJjEx2QFFNDcuNdkBC9gBKDIxMQEPvQIDJjE02AFFOTguMZcADNcBGDGXAA/XAQQmMTjXAUU4Ni40CgMC1gEGygEYNJkAD3wBAzUy',
    'MjIjAjU2LjUJAxo3ewE3MzkzxwEPFQIGNTI1OU4AJzk3DAMbOE8AGDKkAw+aAAQmOTZMAAS5Aho5SAA3MTE1lwAPLwEENTMzM0kARTYzLjAvARsx+gIInwMPEgICJjM39AJFNjAuMsYB',
    'ACoCCRsFGDaYAA9MAAInNDD1AjU3LjleAhsxzwQ3MTgyaAUPewEGJjQ0+QJFMTYuNsoBGzH6Ahg2ygEPmwADFjj5AicyOGACADYFCecACWECD5sABiY1Mf0CJzUylAMbMf4CHzM3AQ8m',
    'NTX8AkY5MS4xzQEL/QIYNGICD+cAAiY1OfsCRDExLjhkAhsx/AIYN8wBD98DAyY2MvgCJzQ5aQUA+gAIMgEPwwQRJjY2+QInMjSdBhsx/gIYOJkAD34BBiY3MP8CVDE5LjIz6AAbMv8C',
    'D9AH////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '////////////////////////////////////////////////////////A1AiaWQiOucCAAChMTQsInVzZXIiOgcA8xItMTQ4IiwiZXZlbnQiOiJwdXJjaGFzZSIsInRzIjoxNzABAPoM',
    'NTE4LCJzY29yZSI6NTIuODZ9CnsiaWQiOjE1UAA3MzY1UABOdmlld0wAJTU1TABVOTEuMTFMABo2TAAvNDZLAA4lOTJLAEUxMS44SgAaN0oAGDeVAF1jbGlja5YANTYyOUsAVTQ5LjQ5',
    'TAAaOEwANzQ0MJcAXmxvZ2luTQAlNjZNAFUyNC4zNE0AGjlNABg4mQAPfgEGNTcwM08AVDE5LjIzTwAqMjBPAB8xmwAPNTc0MEwAVTYwLjcyTAAaMUwAJzQ35wAPNAEDNTc3N0wARTg5',
    'LjbKASoyMkwAGDfKAQ9MAAMQOJoCA2ICJzk5MwEqMjNMADcxODmZAA9iAgI1ODUxTABVMzMuNzXkAAv+AjczNzRMAA/MAQMmODj7AkU0NC4z+wIbMvsCKDQ2MgFtbG9nb3V0GgIQOTYA',
    'A+cAJzU1ZwISMv0CAlYDC9cBLzM5pQMSJjAw2wFFMTYuN6oAC9oBLzUx9QAOJjAz2gFFMjMuOA4DC9kBDw0DETYwNzTzABcxPAQL2QEoMjSYAA/ZAQImMTHZAUU0Ny412QEL2AEoMjEx',
    'AQ9xAgMmMTTYAUU5OC4xLgEM1wEYMZcAD9cBBCYxONQERTg2LjQKAwLWAQVvBRkzbwUPcQIDEDI+AwMjAjU2LjU8BAvUBDczOTPHAQ88BAYmMjXYBCc5NwwDC9cEKDMypAMPmgAEFjnX',
    'BAUSAgvSBCgxMdMEDy8BBCYzM9EERTYzLjAvARsx+gIInwMPEgICJjM39AJFNjAuMsYBACoCCekGD5kGDyc0MPUCNTcuOV4CGzH2Aj8xODI1BxEmNDT5AkUxNi42ygEbMfoCGDbKAQ/n',
    'AAImNDj5AicyOGACADYFCecACWECDxYCBg/QB///////////////////////////////////21AsInVzZQAAAAA=',
  ],
  lz4BlockChecksums: [
    'BCJNGHRQ/90EAADxAHsiaWQiOjAsInVzZXIiOgcA9hItMzk4IiwiZXZlbnQiOiJwdXJjaGFzZSIsInRzIjoxNzABAPIBLCJzY29yZSI6MTYuNzZ9Ck8AGjFPACc1MU4AXmxvZ2luSwAl',
    'MzdLAFQyMy44OUsAGjJLAD80NDBMAA8lNzRMAEU1MS44lwAaM0wAKDI0mABNdmlld5cANTExMUsAVDQ3LjU1lwAbNEsAGDExAV5jbGlja0wAJTQ4TABFOTguMZcAGjVMACg0MZcAbmxv',
    'Z291dE0AJTg1TQBUODYuNDGZABo2TQAoMzSZAA98AQM1MjIyTABENi41NEsAGzdLACc5M3sBDxUCBjUyNTlOAEU5Ny43MwEbOE8AJzI2TwAPmgAEJjk2TAAElwAaOUgAOjExNUgADy8B',
    'ATUzMzNJAEU2My4wLwEqMTBOABc0TAAPEgICNjM3MEoANTAuMsYBGzH1AigxNpgAD0wAAic0MPUCNTcuOSsBGzH2AjcxODKYAA97AQYmNDT5AkUxNi42ygEbMfoCGDbKAQ+bAAMWOPkC',
    'JzI4YAIbMfoCGTFhAg+bAAYmNTH9Aic1MpQDGzH+Ah8zNwEPJjU1/AJGOTEuMc0BC/0CGDRiAg/nAAImNTn7AkQxMS44ZAIbMfwCGDfMAQ/fAwMmNjL4AkU0OS40wgQbMfkCD8MEESY2',
    'NvkCRjI0LjPKAQv+Ai84NRkCESY3MP8CVDE5LjIz6AAbMv8CHzFeBQ8pNzQBAyU3MkwACwEDJzQ3mwAPNAEDJjc3AQNFODkuNsoBGzIBAxg3ygEPTAADJjgx/QInOTkzASoyM+MDNzE4',
    'OZkADxcCAiY4Nf4CJzMzxAQbMv4CKDM3MQQPxQQDJjg4+wJFNDQuMzIEGzL7Aig0NjIBD/kFBCY5Mv0CJzU1ZwISMv0CAoEHC9cBD9AH////////////////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '/////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////wBQLCJ1c2VYJRdR',
    'AAAAADCFz5s=',
  ],
  zstdStreamed: [
    'KLUv/QRY5A0AxtQ2HYA3aQPY8f9/w1e0bbFtRlE6WmT35paUMtQWKy8MOwAtACcA569Vsko7LAWEwWeABExCI0ZJIBKFOU4aMYqFOYyiECBIEgwDg5jFQWko5jC6FoCYhKJgmOMgZmAx',
    'CAG4WKaXlLtXtpY/wqq6oU+opwsGooAw+GfS1bsgWQyJun5HedsHytLwy1DJ9wy038JMJbv2jjZ5785cp77bakUfCf2/tG4pK8/RxqKDJ+0+ZGhmZ29Yd7WJL6NfVZ9WZj5dtdXurVll',
    'pNXMzLsq6eB5+pQVre2k+kYvRPQ+faihQOzRqk+7ASADkWhoHhJoIAjgEBGQEohWMBNInULlq/0/Ay34028JV3NybePvuZTzhyaRWGl4wJ0eEyrQsAoKgbTpifAU17wMHGxuYi2ZapjH',
    'H7zfCUTNUQ+I0C5DGxOFn3N7JF5GTAqrgZtR9aSM89Zd6oAKCHj5XILnxt7PYUxEDXh0aD7phzsXyk8dphdpnyKbf3zO85MK/JfY/QqV9STD3t0KdNadzBZhi4FYp9vIq/g7S8HWcM0x',
    '2svVlYaBQbyEpopagYJPwhHWksM44nQok5hRwxkrTf0fRQAACDEBANyCB0L6sbom',
  ],
  zstdTwoFrames: [
    'KLUv/QRY3QMAQkYVGXArcAPmaMNhWKlaDgDgUFQ/uF1EaQJUBOIq9S8zNdUoUXMMFkVE0VHW1EEpTknAY5AEBXteKvUPT+6b/c5dQKTVGN+zBTf4dwIqgf3ibj/cGxJ3BA8AAIkgmce8',
    'DBp+jA0gRtAZIA+KBgUPgdGgC1IYK7h91JY6tNe/4yi1L/0EWGUEAGLHGBtwSdwyKP6TAlHQoAQHqiqE/BJlv4SMFajPFUSqLK3QEmRRIT26mdlvYFhuSWyipNRJRHfRTHGkbp6E+O3a',
    'ejeLUKCQ/5SbHxZL1vkKohV985QY4Lt+yw3iE9gZgAbqwYPfLhAAUPAFGAPkBU+DNqSY3AnxAHnB06DhJjxxgoEg2Sc8IM5lJRQ8csMcUQ==',
  ],
  gzipCli: [
    'H4sICEvKDGsAA2Z4c21hbGwudHh0AI3RwQ6CMAwG4LuP0TMutN3YxtsYXJRoxDDAA/HdJSQbMA7SS5MevrR/R6ivUOYZ9N61UM7tTNZABm5wr24avfu2ul+8m0adhxJ1vlQGvmpaB6XK',
    'BRbf0zhzmHCkV9yzuTV9t8dYR8yysBwwSrBcHtpNy8ixYBk03mrIB1ZDxMVCoTBgMsGoWGHVs64ee0uaaMlCkAmWSs7kFTXU7rOXjFoCI6F1kIqtJOnQM4kockYJFRPTyZHG/k+M1A/Y',
    'Nun8WAIAAA==',
  ],
  snappyjsRaw: [
    '2AQ4eyJpZCI6MCwidXNlciI6BQeALTI5OCIsImV2ZW50IjoicHVyY2hhc2UiLCJ0cyI6MTcwGQE8LCJzY29yZSI6NTAuMTZ9CglPADE6TwAEMjcdTxRsb2dvdXRGTQAEMzcVTRA5My45',
    'MxFNBDIsBZUVnAQwNB1NZpwABDc0FU8MMy4zNBFOADM2TgAEMTOKmwAIMTExGUwMMS41MRFNADQ6TQAEMjYdmxBjbGlja0LnAAgxNDgVTBA0Ni4yOBFMADU2TAAEMjMdSwx2aWV3RkoA',
    'BDg1FUoQOTIuNzcRSgA2NkoABDQyks0BCDIyMhVPDDg1LjU1MgA3Nk8ACDE4OR2aWs0BBDI1',
  ],
  kafkajsLz4: [
    'BCJNGGRwud0EAADxAHsiaWQiOjAsInVzZXIiOgcA9hItMzk4IiwiZXZlbnQiOiJwdXJjaGFzZSIsInRzIjoxNzABAPIBLCJzY29yZSI6MTYuNzZ9Ck8AGjFPACc1MU4AXmxvZ2luSwAl',
    'MzdLAFQyMy44OUsAGjJLAD80NDBMAA8lNzRMAEU1MS44lwAaM0wAKDI0mABNdmlld5cANTExMUsAVDQ3LjU1lwAbNEsAGDExAV5jbGlja0wAJTQ4TABFOTguMZcAGjVMACg0MZcAbmxv',
    'Z291dE0AJTg1TQBUODYuNDGZABo2TQAoMzSZAA98AQM1MjIyTABENi41NEsAGzdLACc5M3sBDxUCBjUyNTlOAEU5Ny43MwEbOE8AJzI2TwAPmgAEJjk2TAAElwAaOUgAOjExNUgADy8B',
    'ATUzMzNJAEU2My4wLwEqMTBOABc0TAAPEgICNjM3MEoANTAuMsYBGzH1AigxNpgAD0wAAic0MPUCNTcuOSsBGzH2AjcxODKYAA97AQYmNDT5AkUxNi42ygEbMfoCGDbKAQ+bAAMWOPkC',
    'JzI4YAIbMfoCGTFhAg+bAAYmNTH9Aic1MpQDGzH+Ah8zNwEPJjU1/AJGOTEuMc0BC/0CGDRiAg/nAAImNTn7AkQxMS44ZAIbMfwCGDfMAQ/fAwMmNjL4AkU0OS40wgQbMfkCD8MEESY2',
    'NvkCRjI0LjPKAQv+Ai84NRkCESY3MP8CVDE5LjIz6AAbMv8CHzFeBQ8pNzQBAyU3MkwACwEDJzQ3mwAPNAEDJjc3AQNFODkuNsoBGzIBAxg3ygEPTAADJjgx/QInOTkzASoyM+MDNzE4',
    'OZkADxcCAiY4Nf4CJzMzxAQbMv4CKDM3MQQPxQQDJjg4+wJFNDQuMzIEGzL7Aig0NjIBD/kFBCY5Mv0CJzU1ZwISMv0CAoEHC9cBD9AH////////////////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////',
    '/////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////wBQLCJ1c2UAAAAA',
    'MIXPmw==',
  ],
};

function fixture(name: keyof typeof FIXTURES): Buffer {
  return Buffer.from(FIXTURES[name].join(''), 'base64');
}

/** snappy-java's SnappyOutputStream output for "foobar\n", as published with the format's description. */
const SNAPPY_JAVA_FOOBAR = Buffer.from('82534e41505059000000000100000001000000090718666f6f6261720a', 'hex');

function snappyJavaFrame(chunks: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1])];
  for (const chunk of chunks) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(chunk.length, 0);
    parts.push(length, chunk);
  }
  return Buffer.concat(parts);
}

/** Half random bytes, half repetitive text, interleaved in 4 KiB runs. */
function mixedPayload(size: number): Buffer {
  const out = Buffer.alloc(size);
  const text = jsonLines(4096, 11);
  for (let offset = 0; offset < size; offset += 4096) {
    const run = (offset / 4096) % 2 === 0 ? randomBytes(4096) : text;
    run.copy(out, offset, 0, Math.min(4096, size - offset));
  }
  return out;
}

describe('codec attribute bits', () => {
  it('maps attributes bits 0-2 to codecs, ignoring the other bits', () => {
    expect(COMPRESSION_CODECS).toEqual(['none', 'gzip', 'snappy', 'lz4', 'zstd']);
    for (const [bits, codec] of COMPRESSION_CODECS.entries()) {
      expect(codecOfAttributes(bits)).toBe(codec);
      expect(codecAttributeBits(codec)).toBe(bits);
      // timestamp type (bit 3), transactional (bit 4) and control (bit 5) don't change the codec
      expect(codecOfAttributes(bits | 0b111000)).toBe(codec);
    }
  });

  it('rejects codec values 5 to 7', () => {
    for (const bits of [5, 6, 7, 0x0f, 0x3e]) {
      expect(() => codecOfAttributes(bits)).toThrow(CompressionError);
    }
    expect(() => codecOfAttributes(6)).toThrow(/unknown compression codec 6/);
  });
});

describe('round trips', () => {
  const payloads: ReadonlyArray<readonly [string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['one byte', Buffer.from([0x2a])],
    ['small', Buffer.from('hello, records section')],
    ['1 MiB random and repetitive', mixedPayload(1024 * 1024)],
    ['a view into a larger buffer', Buffer.concat([randomBytes(1000), jsonLines(70_000, 5)]).subarray(1000)],
  ];

  for (const codec of COMPRESSION_CODECS) {
    for (const [name, records] of payloads) {
      it(`${codec}: ${name}`, () => {
        const compressed = compressRecords(codec, records);
        expect(Buffer.isBuffer(compressed)).toBe(true);
        expect(decompressRecords(codec, compressed).equals(records)).toBe(true);
      });
    }
  }

  it('none passes bytes through untouched', () => {
    const records = Buffer.from('as is');
    expect(compressRecords('none', records)).toBe(records);
    expect(decompressRecords('none', records)).toBe(records);
  });
});

describe('what we write is what Kafka clients read', () => {
  const records = jsonLines(300_000, 9);

  it('lz4: one standard frame with independent blocks, which the Java consumer requires', () => {
    const frame = compressRecords('lz4', records);
    expect(frame.readUInt32LE(0)).toBe(0x184d2204);
    const flg = frame[4]!;
    const bd = frame[5]!;
    expect(flg >> 6).toBe(0b01); // version
    expect(flg & 0x20).toBe(0x20); // block independence
    expect(flg & 0x03).toBe(0); // reserved
    expect((bd >> 4) & 0x07).toBeGreaterThanOrEqual(4); // 64 KiB .. 4 MiB blocks
    expect(bd & 0x8f).toBe(0); // reserved
  });

  it('zstd: a standard zstd frame', () => {
    expect(compressRecords('zstd', records).readUInt32LE(0)).toBe(0xfd2fb528);
  });

  it('gzip: a standard gzip member', () => {
    const member = compressRecords('gzip', records);
    expect([member[0], member[1], member[2]]).toEqual([0x1f, 0x8b, 8]);
  });

  it('snappy: snappy-java framing with chunks of at most 32 KiB, each a raw snappy block', () => {
    const framed = compressRecords('snappy', records);
    expect(framed.subarray(0, 16).equals(SNAPPY_JAVA_FOOBAR.subarray(0, 16))).toBe(true);
    const chunks: Buffer[] = [];
    for (let offset = 16; offset < framed.length; ) {
      const length = framed.readUInt32BE(offset);
      chunks.push(decompressRecords('snappy', framed.subarray(offset + 4, offset + 4 + length)));
      offset += 4 + length;
    }
    expect(chunks.length).toBe(Math.ceil(records.length / 32768));
    expect(chunks.every((chunk) => chunk.length <= 32768)).toBe(true);
    expect(Buffer.concat(chunks).equals(records)).toBe(true);
  });

  it('snappy: empty records still get one chunk, as librdkafka reads a bare header as raw snappy', () => {
    const framed = compressRecords('snappy', Buffer.alloc(0));
    expect(framed.length).toBeGreaterThan(20);
    expect(decompressRecords('snappy', framed).length).toBe(0);
  });
});

describe('decompressing what other implementations wrote', () => {
  it('lz4 frames from the reference lz4 tool: linked blocks, Java-shaped header, checksummed blocks', () => {
    expect(fixture('lz4JavaShaped').subarray(4, 6)).toEqual(Buffer.from([0x60, 0x40]));
    for (const name of ['lz4Linked', 'lz4JavaShaped', 'lz4BlockChecksums'] as const) {
      expect(decompressRecords('lz4', fixture(name)).equals(FIXTURE_TEXT), name).toBe(true);
    }
  });

  it('lz4 frame written by kafkajs-lz4', () => {
    expect(decompressRecords('lz4', fixture('kafkajsLz4')).equals(FIXTURE_TEXT)).toBe(true);
  });

  it('zstd: a streamed frame without content size, and two concatenated frames', () => {
    expect(decompressRecords('zstd', fixture('zstdStreamed')).equals(FIXTURE_TEXT)).toBe(true);
    expect(decompressRecords('zstd', fixture('zstdTwoFrames')).equals(FIXTURE_SMALL_TEXT)).toBe(true);
  });

  it('gzip from GNU gzip (file name in the header), from zlib, and two concatenated members', () => {
    expect(decompressRecords('gzip', fixture('gzipCli')).equals(FIXTURE_SMALL_TEXT)).toBe(true);
    expect(decompressRecords('gzip', gzipSync(FIXTURE_TEXT, { level: 9 })).equals(FIXTURE_TEXT)).toBe(true);
    const twoMembers = Buffer.concat([gzipSync(FIXTURE_SMALL_TEXT.subarray(0, 100)), gzipSync(FIXTURE_SMALL_TEXT.subarray(100))]);
    expect(decompressRecords('gzip', twoMembers).equals(FIXTURE_SMALL_TEXT)).toBe(true);
  });

  it('snappy: snappy-java framed bytes as the Java client writes them', () => {
    expect(decompressRecords('snappy', SNAPPY_JAVA_FOOBAR).toString()).toBe('foobar\n');
  });

  it('snappy: raw blocks as librdkafka and kafkajs-snappy write them', () => {
    // varint uncompressed length 7, then a literal of 7 bytes (tag (7 - 1) << 2)
    const handMade = Buffer.from([0x07, 0x18, ...Buffer.from('foobar\n')]);
    expect(decompressRecords('snappy', handMade).toString()).toBe('foobar\n');
    expect(decompressRecords('snappy', fixture('snappyjsRaw')).equals(FIXTURE_SMALL_TEXT)).toBe(true);
  });

  it('snappy: snappy-java framing built from the format, with chunk sizes other than ours', () => {
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < FIXTURE_TEXT.length; offset += 10_000) {
      chunks.push(snappyCompressSync(FIXTURE_TEXT.subarray(offset, offset + 10_000)));
    }
    expect(decompressRecords('snappy', snappyJavaFrame(chunks)).equals(FIXTURE_TEXT)).toBe(true);
    expect(decompressRecords('snappy', snappyJavaFrame([])).length).toBe(0);
  });
});

describe('damaged input throws a CompressionError', () => {
  for (const codec of COMPRESSED) {
    it(`${codec}: empty, truncated, garbage, wrong codec`, () => {
      const good = compressRecords(codec, jsonLines(100_000, 13));
      const damaged = [Buffer.alloc(0), good.subarray(0, good.length >> 1), good.subarray(0, 3), randomBytes(4096)];
      for (const input of damaged) {
        expect(() => decompressRecords(codec, input), `${input.length} bytes`).toThrow(CompressionError);
      }
      const other = COMPRESSED.find((c) => c !== codec)!;
      expect(() => decompressRecords(codec, compressRecords(other, jsonLines(1000, 1)))).toThrow(CompressionError);
    });
  }

  it('names the codec and keeps the library error as the cause', () => {
    let caught: unknown;
    try {
      decompressRecords('zstd', Buffer.from('not zstd at all'));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CompressionError);
    expect((caught as Error).message).toMatch(/^cannot decompress zstd records \(15 bytes\): /);
    expect((caught as Error).cause).toBeInstanceOf(Error);
  });

  it('lz4: a flipped bit in a checksummed block', () => {
    const frame = Buffer.from(fixture('lz4BlockChecksums'));
    frame[200] = frame[200]! ^ 0x10;
    expect(() => decompressRecords('lz4', frame)).toThrow(CompressionError);
  });

  it('snappy: broken snappy-java framing', () => {
    const framed = compressRecords('snappy', FIXTURE_TEXT);
    expect(() => decompressRecords('snappy', framed.subarray(0, 12))).toThrow(/header is truncated/);
    expect(() => decompressRecords('snappy', framed.subarray(0, 18))).toThrow(/chunk length at byte 16 is truncated/);
    expect(() => decompressRecords('snappy', framed.subarray(0, framed.length - 1))).toThrow(/claims \d+ bytes/);
    const overlong = Buffer.from(framed);
    overlong.writeUInt32BE(0x7fffffff, 16);
    expect(() => decompressRecords('snappy', overlong)).toThrow(CompressionError);
  });

  for (const codec of COMPRESSED) {
    it(`${codec}: random truncations and bit flips never crash the process`, () => {
      const good = compressRecords(codec, jsonLines(20_000, 17));
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: good.length - 1 }),
          fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
          (cut, flips) => {
            const input = Buffer.from(good.subarray(0, cut === 0 ? good.length : cut));
            for (const [at, mask] of flips) if (at < input.length) input[at] = input[at]! ^ mask;
            try {
              expect(Buffer.isBuffer(decompressRecords(codec, input))).toBe(true);
            } catch (error) {
              expect(error).toBeInstanceOf(CompressionError);
            }
          },
        ),
        { numRuns: 300 },
      );
    });
  }
});

describe('compression ratio', () => {
  it('lz4 and zstd (and gzip, snappy) shrink 100 KB of JSON-like text', () => {
    const text = jsonLines(100_000, 23);
    const ratios = Object.fromEntries(COMPRESSED.map((codec) => [codec, compressRecords(codec, text).length / text.length]));
    expect(ratios.lz4).toBeLessThan(0.5);
    expect(ratios.zstd).toBeLessThan(0.35);
    expect(ratios.gzip).toBeLessThan(0.4);
    expect(ratios.snappy).toBeLessThan(0.6);
  });
});
