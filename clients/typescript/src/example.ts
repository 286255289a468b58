// The Portal client end to end, against a running API (`make run`): sign in, page through
// subscribers, create one, change it with If-Match, book a slot with an Idempotency-Key, and react
// to problems by their type. `node dist/example.js` after `tsc -p clients/typescript`; it prints one
// JSON summary line and fails (exit code 1) when the API does not answer as documented.
//
//   PORTAL_URL (default http://127.0.0.1:8000), PORTAL_USERNAME (default admin), PORTAL_PASSWORD

import { advice, ok, Portal, ProblemError, type Problem } from "./portal.js";

// Node's globals this script uses (the example has no dependency on @types/node).
declare const process: { env: Record<string, string | undefined>; exitCode?: number };

function expect(condition: boolean, what: string): asserts condition {
  if (!condition) {
    throw new Error(`unexpected: ${what}`);
  }
}

/** The problem a call fails with; the call must fail. */
async function problemOf(call: () => Promise<unknown>): Promise<Problem> {
  try {
    await call();
  } catch (error) {
    if (error instanceof ProblemError) {
      console.log(`${error.problem.status} ${error.problem.type}: ${advice(error.problem)}`);
      return error.problem;
    }
    throw error;
  }
  throw new Error("expected a problem, the call succeeded");
}

function randomDigits(count: number): string {
  return Array.from({ length: count }, () => Math.floor(Math.random() * 10)).join("");
}

async function main(): Promise<void> {
  const password = process.env["PORTAL_PASSWORD"];
  expect(password !== undefined, "PORTAL_PASSWORD is not set");
  const portal = new Portal(process.env["PORTAL_URL"] ?? "http://127.0.0.1:8000");
  await portal.login(process.env["PORTAL_USERNAME"] ?? "admin", password);
  await portal.refresh(); // what a UI does when the access token expires
  const me = ok(await portal.api.GET("/auth/me"));

  // Create: 201 with the new subscriber, its ETag and its Location (an absolute path).
  const digits = randomDigits(5);
  const created = await portal.api.POST("/subscribers", {
    body: {
      msisdn: `+4479111${digits}`,
      imsi: `23415${randomDigits(10)}`,
      first_name: "Example",
      last_name: `Client ${digits}`,
      plan: "BASIC",
      attributes: { source: "typescript-example" },
    },
  });
  const subscriber = ok(created);
  const location = created.response.headers.get("Location");
  expect(location !== null && location.startsWith("/"), `Location ${location}`);

  // Read every subscriber, two per page.
  let pages = 0;
  const uids: string[] = [];
  for await (const page of portal.subscribers({ limit: 2 })) {
    pages += 1;
    uids.push(...page.map((item) => item.uid));
  }
  expect(uids.includes(subscriber.uid), "the new subscriber is listed");

  // Update with If-Match (the ETag just read), then see the ETag of the old version refused (412).
  const updated = await portal.patchSubscriber(subscriber.uid, { plan: "GOLD", attributes: { tier: "gold" } });
  expect(updated.plan === "GOLD", "the patch applied");
  const stale = await problemOf(async () =>
    ok(
      await portal.api.PATCH("/subscribers/{uid}", {
        params: { path: { uid: subscriber.uid }, header: { "if-match": created.response.headers.get("ETag") ?? "" } },
        body: { plan: "SILVER" },
      }),
    ),
  );

  // Problems by type: a taken msisdn (409), a bad one (422, naming the field).
  const duplicate = await problemOf(async () =>
    ok(await portal.api.POST("/subscribers", { body: { ...subscriberFields(subscriber), imsi: `23415${randomDigits(10)}` } })),
  );
  const invalid = await problemOf(async () =>
    ok(await portal.api.POST("/subscribers", { body: { ...subscriberFields(subscriber), msisdn: "not a number" } })),
  );

  // A booking: a resource open every day, its first free slot tomorrow, booked twice with one key.
  const resource = ok(
    await portal.api.POST("/bookings/resources", {
      body: {
        name: `Example store ${digits}`,
        kind: "store",
        timezone: "Etc/UTC",
        slot_minutes: 30,
        capacity: 1,
        weekly_schedule: Object.fromEntries(
          (["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const).map((day) => [day, [{ open: "09:00", close: "17:00" }]]),
        ),
      },
    }),
  );
  const tomorrow = new Date(Date.now() + 24 * 3600 * 1000);
  tomorrow.setUTCHours(0, 0, 0, 0);
  const availability = ok(
    await portal.api.GET("/bookings/resources/{resource_id}/availability", {
      params: {
        path: { resource_id: resource.id },
        query: { from: tomorrow.toISOString(), days: 1 },
      },
    }),
  );
  const slot = availability.slots.find((candidate) => candidate.remaining > 0);
  expect(slot !== undefined, "a free slot tomorrow");
  const key = `example-${subscriber.uid}`;
  const book = async () =>
    await portal.api.POST("/bookings", {
      params: { header: { "idempotency-key": key } },
      body: { resource_id: resource.id, subscriber_uid: subscriber.uid, start: slot.start },
    });
  const first = await book();
  const retry = await book(); // e.g. after a timeout: the same booking, not a second one
  expect(ok(retry).id === ok(first).id, "the retry returned the same booking");
  expect(retry.response.headers.get("Idempotent-Replayed") === "true", "the retry is marked as a replay");

  console.log(
    JSON.stringify({
      user: me.username,
      pages,
      listed: uids.length,
      created: subscriber.uid,
      location,
      plan: updated.plan,
      stale: stale.type,
      duplicate: duplicate.type,
      invalid: invalid.type,
      invalid_fields: (invalid.errors ?? []).map((error) => error.field),
      booking: ok(first).id,
    }),
  );
}

function subscriberFields(subscriber: { msisdn: string; imsi: string; first_name: string; last_name: string; plan: string }) {
  const { msisdn, imsi, first_name, last_name, plan } = subscriber;
  return { msisdn, imsi, first_name, last_name, plan };
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
