// Type-checked against a client generated from openapi/openapi.json: a failed ackJob call exposes
// the problem's fields with no cast, because every error answer is declared as a Problem.
import { ackJob, enqueueJob } from "./client/sdk.gen";
import type { Problem } from "./client/types.gen";

export async function ackOrExplain(id: string, leaseId: string): Promise<string> {
  const answer = await ackJob({ path: { id }, body: { lease_id: leaseId, result: { ok: true } } });
  if (answer.error) {
    const code: string = answer.error.code;
    const problem: Problem = answer.error;
    return `${code} (${problem.status}): ${answer.error.detail}`;
  }
  return answer.data ? answer.data.state : "no answer";
}

export async function enqueue(): Promise<string | undefined> {
  const answer = await enqueueJob({ path: { queue: "emails" }, body: { type: "send-email", payload: { to: "ada" } } });
  return answer.error ? answer.error.code : answer.data?.id;
}
