// Routes and policy rules as the mesh computes them and the routes dataplane programs them.
import type { Cidr, Ip } from './ip.js';

/** The table that holds the agent's encapsulation routes (Kilo uses the same number). */
export const ENCAPSULATION_TABLE = 1107;

export interface Route {
  readonly dst: Cidr;
  readonly gw?: Ip;
  readonly dev: string;
  readonly src?: Ip;
  readonly onlink: boolean;
  readonly table: 'main' | number;
}

export interface Rule {
  readonly from?: Cidr;
  readonly to?: Cidr;
  readonly iif?: string;
  readonly table: number;
}
