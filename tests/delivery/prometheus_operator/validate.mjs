// Reads a JSON array of Prometheus Operator objects (ServiceMonitor, PodMonitor, PrometheusRule) on stdin; writes a
// JSON array with, for each, the list of what the Prometheus Operator's schema (@kubernetes-models/prometheus-operator,
// generated from the monitoring.coreos.com/v1 CRDs) refuses in it: "<path> <message>", empty when it is valid.
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const KINDS = { PodMonitor, PrometheusRule, ServiceMonitor };
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const verdicts = objects.map((object) => {
  const Model = KINDS[object.kind];
  if (!Model || object.apiVersion !== Model.apiVersion) {
    return [`not a monitoring.coreos.com/v1 kind this checks: ${object.apiVersion} ${object.kind}`];
  }
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    return (error.errors ?? [{ instancePath: "", message: String(error.message) }]).map(
      (e) => `${e.instancePath || "/"} ${e.message}`,
    );
  }
});
process.stdout.write(JSON.stringify(verdicts));
