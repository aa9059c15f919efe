// node function-options.cjs functions/lib/index.js: "<name> <gcloud flags...>" per function, and
// "<name>:trigger <flags...>" for an event trigger, from the endpoint metadata firebase-functions
// attaches to each trigger, so options are declared once for `firebase deploy` and deploy.sh alike.
const entry = require(require("node:path").resolve(process.argv[2]));
const ingress = { ALLOW_ALL: "all", ALLOW_INTERNAL_ONLY: "internal-only" };
for (const name of ["ingest", "process"]) {
  const endpoint = entry[name]?.__endpoint;
  if (!endpoint) throw new Error(`${process.argv[2]} does not export the function ${name}`);
  const flags = [
    `--memory=${endpoint.availableMemoryMb}Mi`,
    `--cpu=${endpoint.cpu}`,
    `--concurrency=${endpoint.concurrency}`,
    `--timeout=${endpoint.timeoutSeconds}s`,
    `--min-instances=${endpoint.minInstances ?? 0}`,
    `--max-instances=${endpoint.maxInstances}`,
    `--ingress-settings=${ingress[endpoint.ingressSettings]}`,
  ];
  const unset = flags.filter((flag) => /=(undefined|null)(Mi|s)?$/.test(flag)).join(" ");
  if (unset) throw new Error(`${name}: declare these options in its trigger: ${unset}`);
  console.log(`${name} ${flags.join(" ")}`);
  const trigger = endpoint.eventTrigger;
  if (trigger) {
    const retry = trigger.retry === true ? "--retry" : "--no-retry";
    console.log(`${name}:trigger --trigger-topic=${trigger.eventFilters.topic} ${retry}`);
  }
}
