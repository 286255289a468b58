// A typed client of the Subscriber Portal API: openapi-fetch over the types that openapi-typescript
// generates from docs/openapi.json (`make client` writes schema.d.ts). Every path, parameter, body
// and response below is checked against the API's own document by `tsc --strict`.

import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type Schemas = components["schemas"];
export type Problem = Schemas["Problem"];
export type Subscriber = Schemas["SubscriberOut"];
export type SubscriberQuery = Omit<NonNullable<paths["/subscribers"]["get"]["parameters"]["query"]>, "cursor">;

/** An API error: the problem+json body (RFC 9457) and the status it came with. */
export class ProblemError extends Error {
  constructor(
    readonly problem: Problem,
    readonly response: Response,
  ) {
    super(`${problem.status} ${problem.type}: ${problem.detail ?? problem.title}`);
    this.name = "ProblemError";
  }
}

/** openapi-fetch's result: the typed body of a success, or the error body (always a Problem here). */
type Result<T> =
  | { data: T; error?: never; response: Response }
  | { data?: never; error: Problem; response: Response };

/** The success body, or a ProblemError thrown with the problem. */
export function ok<T>(result: Result<T>): T {
  if (result.error !== undefined) {
    throw new ProblemError(result.error, result.response);
  }
  return result.data;
}

/** The ETag of a response (the version to send back as If-Match). */
export function etagOf(response: Response): string {
  const etag = response.headers.get("ETag");
  if (etag === null) {
    throw new Error(`${response.url}: no ETag header`);
  }
  return etag;
}

/**
 * The API as one signed-in user. Requests carry the access token once `login` succeeded; a 401
 * with an expired access token is answered by `refresh` (the refresh token rotates on each use).
 */
export class Portal {
  readonly api: Client<paths>;
  private tokens: Schemas["TokenPair"] | undefined;

  constructor(baseUrl: string) {
    this.api = createClient<paths>({ baseUrl });
    this.api.use({
      onRequest: ({ request }) => {
        if (this.tokens !== undefined && !request.headers.has("Authorization")) {
          request.headers.set("Authorization", `Bearer ${this.tokens.access_token}`);
        }
        return request;
      },
    });
  }

  /** The OAuth2 password grant as a form (the API also takes the same fields as JSON). */
  async login(username: string, password: string): Promise<void> {
    this.tokens = ok(
      await this.api.POST("/auth/login", {
        body: { grant_type: "password", username, password },
        bodySerializer: (body) => new URLSearchParams(body as Record<string, string>),
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
      }),
    );
  }

  /** A new token pair for the refresh token; the old refresh token stops working. */
  async refresh(): Promise<void> {
    if (this.tokens === undefined) {
      throw new Error("not signed in");
    }
    const refreshToken = this.tokens.refresh_token;
    this.tokens = ok(await this.api.POST("/auth/refresh", { body: { refresh_token: refreshToken } }));
  }

  /** Every subscriber the query matches, page after page: `next_cursor` goes back as `cursor` until it is null. */
  async *subscribers(query: SubscriberQuery = {}): AsyncGenerator<Subscriber[]> {
    let cursor: string | null = null;
    do {
      const page: Schemas["SubscriberPage"] = ok(
        await this.api.GET("/subscribers", { params: { query: cursor === null ? query : { ...query, cursor } } }),
      );
      yield page.items;
      cursor = page.next_cursor;
    } while (cursor !== null);
  }

  /**
   * Change some fields of a subscriber with a JSON merge patch, sent with If-Match: the ETag of the
   * version it read. If someone changed the subscriber meanwhile (412 precondition-failed), it reads
   * the new version and applies the patch to that, up to `attempts` times.
   */
  async patchSubscriber(uid: string, patch: Schemas["SubscriberPatch"], attempts = 3): Promise<Subscriber> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.api.GET("/subscribers/{uid}", { params: { path: { uid } } });
      ok(current);
      try {
        return ok(
          await this.api.PATCH("/subscribers/{uid}", {
            params: { path: { uid }, header: { "if-match": etagOf(current.response) } },
            body: patch,
            headers: { "Content-Type": "application/merge-patch+json" },
          }),
        );
      } catch (error) {
        const stale = error instanceof ProblemError && error.problem.type === "/problems/precondition-failed";
        if (!stale || attempt === attempts) {
          throw error;
        }
      }
    }
  }
}

/** What a UI would do with a problem, by its `type` (stable; `title` and `detail` are for people). */
export function advice(problem: Problem): string {
  switch (problem.type) {
    case "/problems/validation-error":
      // `errors` names each field (`body.msisdn`, `query.limit`) with a stable `code`.
      return `fix ${(problem.errors ?? []).map((error) => `${error.field} (${error.code})`).join(", ")}`;
    case "/problems/unauthorized":
      return "refresh the access token, or sign in again";
    case "/problems/forbidden":
      return "this role may not do that: hide the action";
    case "/problems/not-found":
      return "it is gone (or was never visible to this user)";
    case "/problems/conflict":
      return `it clashes with the current state: ${problem.detail ?? problem.title}`;
    case "/problems/precondition-failed":
      return "someone changed it since it was read: reload, then apply the change again";
    case "/problems/precondition-required":
      return "send If-Match with the ETag that was read";
    case "/problems/invalid-cursor":
      return "start the list again from its first page";
    case "/problems/too-many-requests":
    case "/problems/service-busy":
    case "/problems/service-unavailable":
      return "wait for Retry-After seconds, then try again";
    case "/problems/internal-error":
      return `the server failed: quote request id ${problem.request_id ?? "(none)"}`;
    case "/problems/unsupported-media-type":
    case "/problems/request-entity-too-large":
      return `the request itself is wrong: ${problem.detail ?? problem.title}`;
    default:
      return problem.title;
  }
}
