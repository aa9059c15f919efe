export { ingest } from "./ingest";
export { process } from "./process";
