import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errorLine, firstLine } from '../../src/observability/first-line.js';

test("an error shows as its message's first line; what follows stays on the error", () => {
  const cases: [unknown, string][] = [
    [new Error('iptables-restore: exit code 1\nline 3: Chain WLSVC-X does not exist'), 'iptables-restore: exit code 1'],
    [new Error('no line break'), 'no line break'],
    [new Error(''), ''],
    ['a thrown string', 'a thrown string'],
    [undefined, 'undefined'],
  ];
  for (const [err, line] of cases) assert.equal(errorLine(err), line, String(err));
});

test("a command's output shows as its first line that is not blank", () => {
  const cases: [string, string][] = [
    ['RTNETLINK answers: File exists\nCommand failed -:2\n', 'RTNETLINK answers: File exists'],
    ['\n  Error: any valid prefix is expected rather than "x".  \n', 'Error: any valid prefix is expected rather than "x".'],
    ['<html>\r\n<body>502</body>', '<html>'],
    ['', ''],
    [' \n\n', ''],
  ];
  for (const [text, line] of cases) assert.equal(firstLine(text), line, JSON.stringify(text));
});
