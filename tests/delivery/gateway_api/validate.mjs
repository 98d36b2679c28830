// Reads a JSON array of HTTPRoute objects on stdin; writes a JSON array with, for each, the list of what the Gateway
// API's schema (@kubernetes-models/gateway-api, generated from sigs.k8s.io/gateway-api's v1 types and their
// validation markers) refuses in it: "<path> <message>", empty when it is valid.
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const routes = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const verdicts = routes.map((route) => {
  if (route.apiVersion !== HTTPRoute.apiVersion || route.kind !== HTTPRoute.kind) {
    return [`not a ${HTTPRoute.apiVersion} ${HTTPRoute.kind}: ${route.apiVersion} ${route.kind}`];
  }
  try {
    new HTTPRoute(route).validate();
    return [];
  } catch (error) {
    return (error.errors ?? [{ instancePath: "", message: String(error.message) }]).map(
      (e) => `${e.instancePath || "/"} ${e.message}`,
    );
  }
});
process.stdout.write(JSON.stringify(verdicts));
