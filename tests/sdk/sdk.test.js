// Segment's own TypeScript SDK against a running leakguard: a client that
// nobody on this team wrote. run.sh starts the server and passes:
//   LEAKGUARD_URL            the server's base URL
//   LEAKGUARD_WORKSPACE      `leakguard workspace create` output (JSON)
//   LEAKGUARD_DOOMED_TOKEN   `leakguard token create` output (JSON), revoked here
//   LEAKGUARD_OAUTH_APP      `leakguard oauth-app create` output (JSON)
//   LEAKGUARD_OAUTH_KEY      the PEM private key of that app's public key
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const sdk = require('@segment/public-api-sdk-typescript');

const BASE = required('LEAKGUARD_URL');
const created = JSON.parse(required('LEAKGUARD_WORKSPACE'));
const doomed = JSON.parse(required('LEAKGUARD_DOOMED_TOKEN'));
const OWNER_TOKEN = created.token;
const ACTOR = `public-api-token/${created.tokenId}`;

function required(name) {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set; run tests/sdk/run.sh`);
    return value;
}

/** Every API client of the SDK, pointed at leakguard. */
function clients(token) {
    const api = sdk.configureApis(token);
    for (const client of Object.values(api)) client.basePath = BASE;
    return api;
}

const api = clients(OWNER_TOKEN);
const { unwrap } = sdk;

/** The HttpError an SDK call rejects with. */
async function rejection(promise) {
    try {
        await promise;
    } catch (e) {
        return e;
    }
    assert.fail('the call succeeded');
}

// Filled in as the tests run, in file order.
const state = { sourceIds: [], deletedSourceId: null, destinationId: null };

test('getWorkspace answers the token\'s workspace', async () => {
    const { response, body } = await api.workspaces.getWorkspace();
    assert.equal(response.statusCode, 200);
    assert.ok(body.data.workspace instanceof sdk.WorkspaceV1);
    assert.deepEqual({ ...body.data.workspace }, created.workspace);
});

test('the catalog lists entries with options, and getSourceMetadata returns one', async () => {
    const sources = await unwrap(api.catalog.getSourcesCatalog({ count: 200 }));
    assert.equal(sources.sourcesCatalog.length, 12);
    assert.equal(sources.pagination.totalEntries, 12);
    const javascript = sources.sourcesCatalog.find((e) => e.slug === 'javascript');
    assert.ok(javascript, 'javascript is in the catalog');
    assert.ok(javascript.options.length > 0);
    for (const option of javascript.options) {
        assert.ok(option instanceof sdk.IntegrationOptionBeta);
        assert.equal(typeof option.name, 'string');
        assert.equal(typeof option.required, 'boolean');
    }
    const one = await unwrap(api.catalog.getSourceMetadata(javascript.id));
    assert.deepEqual(one.sourceMetadata, javascript);
    state.sourceKind = javascript.id;

    const destinations = await unwrap(api.catalog.getDestinationsCatalog({ count: 5 }));
    assert.equal(destinations.destinationsCatalog.length, 5);
    assert.equal(destinations.pagination.totalEntries, 12);
    const webhooks = (await unwrap(api.catalog.getDestinationsCatalog({ count: 200 })))
        .destinationsCatalog.find((e) => e.slug === 'webhooks');
    assert.ok(webhooks, 'webhooks is in the catalog');
    const again = await unwrap(api.catalog.getDestinationMetadata(webhooks.id));
    assert.equal(again.destinationMetadata.name, 'Webhooks');
    state.destinationKind = webhooks.id;
});

test('sources: create, list across two pages, get, update, write keys, delete', async () => {
    // As the SDK's CreateSourceV1Input has it: no name, no labels.
    for (const slug of ['web', 'ios-app', 'backend']) {
        const { response, body } = await api.sources.createSource({
            slug,
            enabled: true,
            metadataId: state.sourceKind,
            settings: { trackPageViews: true },
        });
        assert.equal(response.statusCode, 201);
        const source = body.data.source;
        assert.equal(source.slug, slug);
        assert.equal(source.name, slug, 'the name defaults to the slug');
        assert.equal(source.workspaceId, created.workspace.id);
        assert.equal(source.enabled, true);
        assert.equal(source.metadata.id, state.sourceKind);
        assert.deepEqual(source.labels, []);
        assert.deepEqual(source.settings, { trackPageViews: true });
        assert.equal(source.writeKeys.length, 1);
        assert.match(source.writeKeys[0], /^[0-9A-Za-z]{32}$/);
        state.sourceIds.push(source.id);
    }

    const first = await unwrap(api.sources.listSources({ count: 2 }));
    assert.equal(first.sources.length, 2);
    assert.equal(first.pagination.totalEntries, 3);
    assert.ok(first.pagination.next, 'there is a second page');
    const second = await unwrap(
        api.sources.listSources({ count: 2, cursor: first.pagination.next }),
    );
    assert.equal(second.sources.length, 1);
    assert.equal(second.pagination.next, null);
    assert.ok(second.pagination.previous);
    assert.deepEqual(
        [...first.sources, ...second.sources].map((s) => s.id),
        state.sourceIds,
        'oldest first, no gaps, no duplicates',
    );

    const [webId, , backendId] = state.sourceIds;
    const got = await unwrap(api.sources.getSource(webId));
    assert.deepEqual(got.source, first.sources[0]);

    const updated = await unwrap(
        api.sources.updateSource(webId, { name: 'Website', enabled: false }),
    );
    assert.equal(updated.source.name, 'Website');
    assert.equal(updated.source.enabled, false);
    assert.equal(updated.source.slug, 'web');
    assert.deepEqual((await unwrap(api.sources.getSource(webId))).source, updated.source);

    const withTwo = await unwrap(api.sources.createWriteKeyForSource(webId));
    assert.equal(withTwo.source.writeKeys.length, 2);
    assert.equal(withTwo.source.writeKeys[0], updated.source.writeKeys[0]);
    const removed = await unwrap(
        api.sources.removeWriteKeyFromSource(webId, withTwo.source.writeKeys[0]),
    );
    assert.equal(removed.status, 'SUCCESS');
    assert.deepEqual(
        (await unwrap(api.sources.getSource(webId))).source.writeKeys,
        withTwo.source.writeKeys.slice(1),
    );

    const { body } = await api.sources.deleteSource(backendId);
    assert.deepEqual({ ...body.data }, { status: 'SUCCESS' });
    const gone = await rejection(api.sources.getSource(backendId));
    assert.equal(gone.statusCode, 404);
    assert.equal(gone.body.errors[0].message, 'source not found');
    state.deletedSourceId = backendId;
});

test('createDestination and listDestinations', async () => {
    const [webId] = state.sourceIds;
    // As the SDK's CreateDestinationV1Input has it: settings required.
    const { response, body } = await api.destinations.createDestination({
        sourceId: webId,
        metadataId: state.destinationKind,
        enabled: true,
        settings: { url: 'https://hooks.example/in', sharedSecret: 's3cr3t' },
    });
    assert.equal(response.statusCode, 201);
    const destination = body.data.destination;
    assert.equal(destination.name, 'Webhooks', 'the name defaults to the catalog name');
    assert.equal(destination.sourceId, webId);
    assert.equal(destination.enabled, true);
    assert.equal(destination.metadata.id, state.destinationKind);
    assert.deepEqual(destination.settings, {
        url: 'https://hooks.example/in',
        sharedSecret: '••••',
    });
    state.destinationId = destination.id;

    const list = await unwrap(api.destinations.listDestinations({ count: 10 }));
    assert.deepEqual(list.destinations, [destination]);
    assert.equal(list.pagination.totalEntries, 1);
});

test('listAuditEvents shows what the SDK did', async () => {
    const { events } = await unwrap(api.auditTrail.listAuditEvents({ count: 100 }));
    const mine = events
        .filter((e) => e.actor === ACTOR)
        .map((e) => `${e.type} ${e.resourceId}`)
        .reverse(); // the trail is newest first
    const [webId, iosId, backendId] = state.sourceIds;
    assert.deepEqual(mine, [
        `Source Created ${webId}`,
        `Source Created ${iosId}`,
        `Source Created ${backendId}`,
        `Source Modified ${webId}`,
        `Source Modified ${webId}`, // write key added
        `Source Modified ${webId}`, // write key removed
        `Source Deleted ${backendId}`,
        `Destination Created ${state.destinationId}`,
    ]);
    for (const event of events) {
        assert.ok(event instanceof sdk.AuditEventV1);
        assert.ok(!Number.isNaN(Date.parse(event.timestamp)), event.timestamp);
    }
    // The SDK's own filter parameters.
    const filtered = await unwrap(
        api.auditTrail.listAuditEvents({ count: 10 }, undefined, undefined, backendId, 'source'),
    );
    assert.deepEqual(
        filtered.events.map((e) => e.type),
        ['Source Deleted', 'Source Created'],
    );
});

test('warehouses: the catalog, create, read, change, connection state, validation, sources, delete', async () => {
    const catalog = await unwrap(api.catalog.getWarehousesCatalog({ count: 200 }));
    const slugs = catalog.warehousesCatalog.map((e) => e.slug);
    for (const slug of ['postgres', 'snowflake', 'bigquery', 'redshift']) {
        assert.ok(slugs.includes(slug), `${slug} is in the catalog`);
    }
    const postgres = catalog.warehousesCatalog.find((e) => e.slug === 'postgres');
    assert.ok(postgres instanceof sdk.WarehouseMetadataV1);
    const password = postgres.options.find((o) => o.name === 'password');
    assert.equal(password.type, 'password');
    assert.equal(password.required, true);
    const one = await unwrap(api.catalog.getWarehouseMetadata(postgres.id));
    assert.deepEqual(one.warehouseMetadata, postgres);

    const settings = {
        hostname: 'db.internal', port: 5432, database: 'events',
        username: 'loader', password: 'hunter2',
    };
    const validated = await unwrap(
        api.warehouses.createValidationInWarehouse({ metadataId: postgres.id, settings }),
    );
    assert.equal(validated.status, 'CONNECTED');
    const incomplete = await unwrap(
        api.warehouses.createValidationInWarehouse({ metadataId: postgres.id, settings: { port: 5432 } }),
    );
    assert.equal(incomplete.status, 'FAILED');

    const { response, body } = await api.warehouses.createWarehouse({
        metadataId: postgres.id,
        name: 'Analytics',
        settings,
    });
    assert.equal(response.statusCode, 201);
    const warehouse = body.data.warehouse;
    assert.ok(warehouse instanceof sdk.WarehouseV1);
    assert.equal(warehouse.workspaceId, created.workspace.id);
    assert.equal(warehouse.enabled, true);
    assert.equal(warehouse.metadata.id, postgres.id);
    assert.equal(warehouse.settings.password, '••••');
    assert.equal(warehouse.settings.hostname, 'db.internal');

    const bad = await rejection(
        api.warehouses.createWarehouse({ metadataId: postgres.id, settings: { hostname: 1 } }),
    );
    assert.equal(bad.statusCode, 422);
    assert.ok(bad.body.errors.some((e) => e.field === 'settings.password'));

    const listed = await unwrap(api.warehouses.listWarehouses({ count: 10 }));
    assert.deepEqual(listed.warehouses.map((w) => w.id), [warehouse.id]);
    assert.equal(listed.pagination.totalEntries, 1);
    const got = await unwrap(api.warehouses.getWarehouse(warehouse.id));
    assert.deepEqual(got.warehouse, warehouse);

    // As the SDK's UpdateWarehouseV1Input has it: settings always sent.
    const updated = await unwrap(
        api.warehouses.updateWarehouse(warehouse.id, {
            enabled: false,
            settings: { ...warehouse.settings, database: 'events_v2' },
        }),
    );
    assert.equal(updated.warehouse.enabled, false);
    assert.equal(updated.warehouse.settings.database, 'events_v2');
    assert.equal(updated.warehouse.settings.password, '••••', 'the echoed mask kept the password');
    const connection = await unwrap(api.warehouses.getConnectionStateFromWarehouse(warehouse.id));
    assert.equal(connection.connectionState, 'CONNECTED');

    const [webId, iosId] = state.sourceIds;
    for (const sourceId of [webId, iosId]) {
        const { response, body } = await api.warehouses.addConnectionFromSourceToWarehouse(
            warehouse.id, sourceId,
        );
        assert.equal(response.statusCode, 201);
        assert.equal(body.data.status, 'CONNECTED');
    }
    const connected = await unwrap(
        api.warehouses.listConnectedSourcesFromWarehouse(warehouse.id, { count: 1 }),
    );
    assert.equal(connected.sources.length, 1);
    assert.equal(connected.pagination.totalEntries, 2);
    assert.ok(connected.sources[0] instanceof sdk.SourceV1);
    const rest = await unwrap(
        api.warehouses.listConnectedSourcesFromWarehouse(warehouse.id, {
            count: 1, cursor: connected.pagination.next,
        }),
    );
    assert.deepEqual([...connected.sources, ...rest.sources].map((s) => s.id), [webId, iosId]);
    const removed = await unwrap(api.warehouses.removeSourceConnectionFromWarehouse(warehouse.id, iosId));
    assert.equal(removed.status, 'SUCCESS');
    const fed = await unwrap(api.sources.listConnectedWarehousesFromSource(webId, { count: 10 }));
    assert.deepEqual(fed.warehouses.map((w) => w.id), [warehouse.id]);
    assert.deepEqual(
        (await unwrap(api.sources.listConnectedWarehousesFromSource(iosId, { count: 10 }))).warehouses,
        [],
    );
    const destinations = await unwrap(api.sources.listConnectedDestinationsFromSource(webId, { count: 10 }));
    assert.deepEqual(destinations.destinations.map((d) => d.id), [state.destinationId]);

    const deleted = await unwrap(api.warehouses.deleteWarehouse(warehouse.id));
    assert.equal(deleted.status, 'SUCCESS');
    assert.equal((await rejection(api.warehouses.getWarehouse(warehouse.id))).statusCode, 404);
});

test('tracking plans: plans, rules with JSON Schemas, and the sources that follow them', async () => {
    const plans = api.trackingPlans;
    const { trackingPlan } = await unwrap(
        plans.createTrackingPlan({ name: 'Web Events', description: 'What the site sends', type: 'LIVE' }),
    );
    assert.ok(trackingPlan instanceof sdk.TrackingPlanV1);
    assert.equal(trackingPlan.slug, 'web-events');
    await unwrap(plans.createTrackingPlan({ name: 'Library', type: 'RULE_LIBRARY' }));
    const live = await unwrap(plans.listTrackingPlans({ count: 10 }, 'LIVE'));
    assert.deepEqual(live.trackingPlans.map((p) => p.id), [trackingPlan.id]);
    assert.equal((await unwrap(plans.listTrackingPlans({ count: 10 }))).pagination.totalEntries, 2);

    const renamed = await unwrap(plans.updateTrackingPlan(trackingPlan.id, { name: 'Site Events' }));
    assert.equal(renamed.status, 'SUCCESS');
    assert.equal((await unwrap(plans.getTrackingPlan(trackingPlan.id))).trackingPlan.name, 'Site Events');

    const orderCompleted = {
        $schema: 'http://json-schema.org/draft-07/schema#',
        type: 'object',
        properties: { properties: { type: 'object', required: ['total'] } },
    };
    const replaced = await unwrap(plans.replaceRulesInTrackingPlan(trackingPlan.id, {
        rules: [
            { type: 'TRACK', key: 'Order Completed', version: 1, jsonSchema: orderCompleted },
            { type: 'IDENTIFY', version: 1, jsonSchema: { type: 'object' } },
        ],
    }));
    assert.equal(replaced.status, 'SUCCESS');
    const invalid = await rejection(plans.replaceRulesInTrackingPlan(trackingPlan.id, {
        rules: [{ type: 'TRACK', key: 'Broken', version: 1, jsonSchema: { type: 'objekt' } }],
    }));
    assert.equal(invalid.statusCode, 422);
    assert.equal(invalid.body.errors[0].field, 'rules[0].jsonSchema');
    await unwrap(plans.updateRulesInTrackingPlan(trackingPlan.id, {
        rules: [
            { type: 'TRACK', key: 'Order Completed', newKey: 'Order Done', version: 1, jsonSchema: orderCompleted },
            { type: 'PAGE', key: 'Home', version: 1, jsonSchema: { type: 'object' } },
        ],
    }));
    const first = await unwrap(plans.listRulesFromTrackingPlan(trackingPlan.id, { count: 2 }));
    assert.ok(first.rules[0] instanceof sdk.RuleV1);
    assert.deepEqual(first.rules[0].jsonSchema, orderCompleted);
    assert.equal(first.pagination.totalEntries, 3);
    const second = await unwrap(
        plans.listRulesFromTrackingPlan(trackingPlan.id, { count: 2, cursor: first.pagination.next }),
    );
    assert.deepEqual(
        [...first.rules, ...second.rules].map((r) => `${r.type} ${r.key ?? ''} v${r.version}`),
        ['TRACK Order Done v1', 'IDENTIFY  v1', 'PAGE Home v1'],
    );
    // The SDK sends these in the query string, as rules[0][type]=….
    const gone = await unwrap(plans.removeRulesFromTrackingPlan(trackingPlan.id, [
        { type: 'IDENTIFY', version: 1 },
        { type: 'PAGE', key: 'Home', version: 1 },
    ]));
    assert.equal(gone.status, 'SUCCESS');
    const left = await unwrap(plans.listRulesFromTrackingPlan(trackingPlan.id, { count: 10 }));
    assert.deepEqual(left.rules.map((r) => r.key), ['Order Done']);

    const [webId, iosId] = state.sourceIds;
    for (const sourceId of [webId, iosId]) {
        assert.equal((await unwrap(plans.addSourceToTrackingPlan(trackingPlan.id, { sourceId }))).status, 'SUCCESS');
    }
    const following = await unwrap(plans.listSourcesFromTrackingPlan(trackingPlan.id, { count: 10 }));
    assert.deepEqual(following.sources.map((s) => s.id), [webId, iosId]);
    assert.equal((await unwrap(plans.removeSourceFromTrackingPlan(trackingPlan.id, iosId))).status, 'SUCCESS');
    assert.equal(
        (await unwrap(plans.listSourcesFromTrackingPlan(trackingPlan.id, { count: 10 }))).pagination.totalEntries,
        1,
    );
    assert.equal((await unwrap(plans.deleteTrackingPlan(trackingPlan.id))).status, 'SUCCESS');
    assert.equal((await rejection(plans.getTrackingPlan(trackingPlan.id))).statusCode, 404);
});

test('labels: the workspace\'s, and a source\'s', async () => {
    const { label } = await unwrap(
        api.labels.createLabel({ label: { key: 'env', value: 'prod', description: 'Live traffic' } }),
    );
    assert.ok(label instanceof sdk.LabelV1);
    assert.deepEqual({ ...label }, { key: 'env', value: 'prod', description: 'Live traffic' });
    await unwrap(api.labels.createLabel({ label: { key: 'team', value: 'growth/web' } }));
    const duplicate = await rejection(api.labels.createLabel({ label: { key: 'env', value: 'prod' } }));
    assert.equal(duplicate.statusCode, 409);
    const { labels } = await unwrap(api.labels.listLabels());
    assert.deepEqual(labels.map((l) => `${l.key}:${l.value}`), ['env:prod', 'team:growth/web']);

    const [, iosId] = state.sourceIds;
    // A LabelV1 from listLabels, description and all.
    const added = await unwrap(api.sources.addLabelsToSource(iosId, { labels: [labels[0]] }));
    assert.deepEqual(added.labels.map((l) => `${l.key}:${l.value}`), ['env:prod']);
    const replaced = await unwrap(api.sources.replaceLabelsInSource(iosId, { labels: [labels[1]] }));
    assert.deepEqual(replaced.labels.map((l) => `${l.key}:${l.value}`), ['team:growth/web']);
    const unknown = await rejection(
        api.sources.addLabelsToSource(iosId, { labels: [{ key: 'nope', value: 'x' }] }),
    );
    assert.equal(unknown.statusCode, 422);

    assert.equal((await unwrap(api.labels.deleteLabel('team', 'growth/web'))).status, 'SUCCESS');
    assert.deepEqual((await unwrap(api.sources.getSource(iosId))).source.labels, []);
    assert.equal((await rejection(api.labels.deleteLabel('team', 'growth/web'))).statusCode, 404);
});

test('a revoked token: the SDK call rejects with the 401 body', async () => {
    const doomedApi = clients(doomed.token);
    await unwrap(doomedApi.workspaces.getWorkspace()); // works until revoked

    // The SDK has no token endpoints, so revoke the way an owner would.
    const res = await fetch(`${BASE}/tokens/${doomed.id}`, {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${OWNER_TOKEN}` },
    });
    assert.equal(res.status, 200);

    const error = await rejection(doomedApi.workspaces.getWorkspace());
    // The SDK is compiled to ES5, where a subclass of Error fails
    // `instanceof`; its name is what identifies it.
    assert.equal(error.name, 'HttpError');
    assert.equal(error.statusCode, 401);
    assert.deepEqual(error.body, {
        errors: [{ type: 'unauthorized', message: 'this token has been revoked' }],
    });
    // unwrap, as the SDK's README uses it, rejects with the first error.
    await assert.rejects(unwrap(doomedApi.sources.listSources({ count: 1 })), {
        type: 'unauthorized',
        message: 'this token has been revoked',
    });
});

test('the README example works as written', () => {
    const readme = fs.readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
    const block = readme.match(/<!-- sdk-example -->\n```js\n([\s\S]*?)```/);
    assert.ok(block, 'README.md has the SDK example after <!-- sdk-example -->');
    const example = block[1];
    assert.equal(example.trim().split('\n').length, 5, 'five lines');
    // Only the address differs: this server has a port of its own.
    const code = example.replace('http://127.0.0.1:8080', BASE);
    const out = execFileSync(process.execPath, ['-e', code], {
        cwd: __dirname,
        env: { ...process.env, TOKEN: OWNER_TOKEN },
        encoding: 'utf8',
    });
    assert.deepEqual(out.trim().split('\n').sort(), [
        created.workspace.slug,
        `sources: ${state.sourceIds.length - 1}`,
    ].sort());
});

/** A client assertion as Segment's OAuth guide has one made: RS256 with
 * the app's private key, `kid` its key, `sub` the app, a minute to live. */
function clientAssertion(app, privateKey) {
    const now = Math.floor(Date.now() / 1000);
    const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const header = { alg: 'RS256', typ: 'JWT', kid: app.keys[0].id };
    const claims = { sub: app.id, aud: BASE, iat: now, exp: now + 60, jti: crypto.randomUUID() };
    const signed = `${part(header)}.${part(claims)}`;
    const signature = crypto.sign('sha256', Buffer.from(signed), privateKey);
    return `${signed}.${signature.toString('base64url')}`;
}

test('an access token from POST /oauth2/token authenticates the SDK', async () => {
    const app = JSON.parse(required('LEAKGUARD_OAUTH_APP'));
    const privateKey = fs.readFileSync(required('LEAKGUARD_OAUTH_KEY'), 'utf8');
    const res = await fetch(`${BASE}/oauth2/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
            grant_type: 'client_credentials',
            client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
            client_assertion: clientAssertion(app, privateKey),
            scope: 'public_api:read_write',
        }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const grant = await res.json();
    assert.equal(grant.token_type, 'Bearer');
    assert.equal(grant.scope, 'public_api:read_write');
    assert.equal(grant.expires_in, app.tokenExpiresIn);
    assert.match(grant.access_token, /^sgo_[A-Za-z0-9]{64}$/);

    const oauth = clients(grant.access_token);
    const { workspace } = await unwrap(oauth.workspaces.getWorkspace());
    assert.deepEqual({ ...workspace }, created.workspace);
    // public_api:read_write acts as a member: it creates sources...
    const { source } = await unwrap(
        oauth.sources.createSource({ slug: 'from-oauth', enabled: true, metadataId: state.sourceKind }),
    );
    assert.equal(source.slug, 'from-oauth');
    const listed = await unwrap(oauth.sources.listSources({ count: 200 }));
    assert.ok(listed.sources.some((s) => s.id === source.id));
    // ...but reads no audit trail, which is the owners'.
    const refused = await rejection(oauth.auditTrail.listAuditEvents({ count: 10 }));
    assert.equal(refused.statusCode, 403);

    // The trail names the app and the token's last four characters.
    const { events } = await unwrap(
        api.auditTrail.listAuditEvents({ count: 10 }, undefined, undefined, source.id, 'source'),
    );
    assert.deepEqual(
        events.map((e) => [e.type, e.actor]),
        [['Source Created', `oauth-app/${app.id}/token/${grant.access_token.slice(-4)}`]],
    );

    // A replayed assertion gets nothing.
    const assertion = clientAssertion(app, privateKey);
    const form = () => new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
    });
    const post = () => fetch(`${BASE}/oauth2/token`, { method: 'POST', body: form() });
    assert.equal((await post()).status, 200);
    const replay = await post();
    assert.equal(replay.status, 401);
    assert.equal((await replay.json()).error, 'invalid_client');
});
