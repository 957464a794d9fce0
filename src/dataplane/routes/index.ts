// The routes-and-rules dataplane: the agent's routes and policy rules, marked by its route protocol.
export {
  DEFAULT_ROUTE_PROTOCOL,
  DEFAULT_RULE_PRIORITY,
  RoutesDataplane,
  type RoutesApplyReport,
  type RoutesDataplaneOptions,
  type RoutesDesired,
} from './routes-dataplane.js';
export { planRoutes, MAIN_TABLE, type Plan, type PlannedWrite } from './route-plan.js';
export { planRules } from './rule-plan.js';
export { PartialApplyError, type WriteFailure } from '../partial-apply.js';
