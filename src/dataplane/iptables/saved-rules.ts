// The part of `iptables-save` output that belongs to one owner: its chains (with their rules in
// iptables-save's canonical spelling) and its jump rules inside chains it does not own. Everything
// else is skipped without being parsed, so a host with a large foreign rule set costs a line split.
import { type ChainOwner, chainKey } from './ruleset.js';

export interface SavedRules {
  /** Owned chains by chainKey(table, chain): the text after `-A CHAIN `, in order. */
  readonly chains: Map<string, string[]>;
  /** Owned jump rules by chainKey(table, from chain): the text after `-A CHAIN `, in order. */
  readonly jumps: Map<string, string[]>;
}

// iptables-save quotes a comment only when it has to (spaces, quotes) and escapes `"` and `\`.
const COMMENT = /(?:^|\s)--comment\s+(?:"((?:[^"\\]|\\.)*)"|(\S+))/;

export function commentOf(ruleText: string): string | undefined {
  const m = COMMENT.exec(ruleText);
  if (m === null) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
}

export function parseSavedRules(text: string, owner: ChainOwner): SavedRules {
  const chains = new Map<string, string[]>();
  const jumps = new Map<string, string[]>();
  let table = '';
  for (const line of text.split('\n')) {
    const first = line.charCodeAt(0);
    if (first === 42 /* '*' */) {
      table = line.slice(1).trim();
    } else if (first === 58 /* ':' */) {
      const chain = line.slice(1, line.indexOf(' ') < 0 ? undefined : line.indexOf(' '));
      if (chain.startsWith(owner.chainPrefix)) chains.set(chainKey(table, chain), []);
    } else if (line.startsWith('-A ')) {
      const space = line.indexOf(' ', 3);
      const chain = space < 0 ? line.slice(3) : line.slice(3, space);
      const rule = space < 0 ? '' : line.slice(space + 1);
      if (chain.startsWith(owner.chainPrefix)) {
        const key = chainKey(table, chain);
        const rules = chains.get(key);
        if (rules === undefined) chains.set(key, [rule]);
        else rules.push(rule);
      } else if (rule.includes(owner.commentPrefix) && commentOf(rule)?.startsWith(owner.commentPrefix) === true) {
        const key = chainKey(table, chain);
        const ours = jumps.get(key);
        if (ours === undefined) jumps.set(key, [rule]);
        else ours.push(rule);
      }
    }
  }
  return { chains, jumps };
}
