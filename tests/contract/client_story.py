"""A short story told through a client that openapi-python-client generated
from leakguard's own /openapi.json (tests/contract/run.sh generates it):
create a label and sources that carry it, page through them, change one,
delete it, read what happened in the audit trail, and create a warehouse
whose settings the catalog entry types. Every answer is parsed by the generated
models, so an answer outside the document fails here.

    LEAKGUARD_URL=http://127.0.0.1:8080 LEAKGUARD_TOKEN=sgp_... python client_story.py
"""

import os
import sys
import unittest

from leakguard_client import AuthenticatedClient
from leakguard_client.api.audit_trail import list_audit_events
from leakguard_client.api.labels import create_label
from leakguard_client.api.sources import (
    create_source,
    delete_source,
    get_source,
    list_sources,
    update_source,
)
from leakguard_client.api.warehouses import create_warehouse
from leakguard_client.api.workspaces import get_workspace
from leakguard_client.models import (
    CreateLabelInput,
    CreateSourceInputJavascript,
    CreateWarehouseInputPostgres,
    CreateWarehouseInputPostgresSettings,
    DoneStatus,
    Errors,
    LabelInput,
    ListAuditEventsResourceType,
    UpdateSourceInput,
)


def client():
    return AuthenticatedClient(
        base_url=os.environ["LEAKGUARD_URL"],
        token=os.environ["LEAKGUARD_TOKEN"],
        raise_on_unexpected_status=True,
    )


class Story(unittest.TestCase):
    def test_create_page_update_delete_and_audit(self):
        api = client()
        workspace = get_workspace.sync(client=api).data.workspace
        self.assertTrue(workspace.slug)

        # A label of the workspace, then three sources; the first with a
        # name and that label.
        label = create_label.sync(
            client=api, body=CreateLabelInput(label=LabelInput(key="env", value="prod"))
        ).data.label
        self.assertEqual((label.key, label.value, label.description), ("env", "prod", ""))
        created = []
        for slug in ["web", "ios", "android"]:
            body = CreateSourceInputJavascript(
                slug=slug,
                enabled=True,
                metadata_id="kVr3mQ8cTn",
                name="Website" if slug == "web" else None,
                labels=[LabelInput(key="env", value="prod")] if slug == "web" else None,
            )
            answer = create_source.sync(client=api, body=body)
            self.assertNotIsInstance(answer, Errors, answer)
            source = answer.data.source
            self.assertEqual(source.slug, slug)
            self.assertEqual(source.workspace_id, workspace.id)
            self.assertEqual(len(source.write_keys), 1)
            created.append(source)
        self.assertEqual(created[0].name, "Website")
        self.assertEqual(created[0].labels[0].value, "prod")

        # A taken slug is a 409, parsed as the document's error model.
        duplicate = create_source.sync_detailed(
            client=api,
            body=CreateSourceInputJavascript(slug="web", enabled=True, metadata_id="kVr3mQ8cTn"),
        )
        self.assertEqual(duplicate.status_code, 409)
        self.assertIsInstance(duplicate.parsed, Errors)
        self.assertEqual(duplicate.parsed.errors[0].type_.value, "conflict")

        # Page through them two at a time, oldest first.
        seen, cursor = [], None
        while True:
            kwargs = {"paginationcount": 2}
            if cursor:
                kwargs["paginationcursor"] = cursor
            page = list_sources.sync(client=api, **kwargs).data
            self.assertEqual(page.pagination.total_entries, 3)
            seen += [s.id for s in page.sources]
            cursor = page.pagination.next_
            if not cursor:
                break
        self.assertEqual(seen, [s.id for s in created])

        # Change one.
        web = created[0]
        changed = update_source.sync(
            web.id, client=api, body=UpdateSourceInput(name="Web site", enabled=False)
        ).data.source
        self.assertEqual((changed.name, changed.enabled), ("Web site", False))
        self.assertEqual(get_source.sync(web.id, client=api).data.source.name, "Web site")

        # Delete it: gone.
        done = delete_source.sync(web.id, client=api).data
        self.assertEqual(done.status, DoneStatus.SUCCESS)
        gone = get_source.sync_detailed(web.id, client=api)
        self.assertEqual(gone.status_code, 404)
        self.assertIsInstance(gone.parsed, Errors)

        # The audit trail tells it, newest first.
        events = list_audit_events.sync(
            client=api,
            resource_id=web.id,
            resource_type=ListAuditEventsResourceType.SOURCE,
        ).data.events
        self.assertEqual(
            [e.type_ for e in events],
            ["Source Deleted", "Source Modified", "Source Created"],
        )
        self.assertEqual(events[1].details["changes"]["name"]["to"], "Web site")
        everything = list_audit_events.sync(client=api).data.events
        self.assertEqual(sum(e.type_ == "Source Created" for e in everything), 3)

        # A warehouse: its settings are typed by its kind; the password is
        # never shown again.
        warehouse = create_warehouse.sync(
            client=api,
            body=CreateWarehouseInputPostgres(
                metadata_id="yxka8LBEe6",
                settings=CreateWarehouseInputPostgresSettings(
                    hostname="db.internal", port=5432, database="events",
                    username="loader", password="hunter2",
                ),
            ),
        ).data.warehouse
        self.assertEqual(warehouse.metadata.slug, "postgres")
        self.assertEqual(warehouse.settings["password"], "••••")
        self.assertEqual(warehouse.settings["hostname"], "db.internal")


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
