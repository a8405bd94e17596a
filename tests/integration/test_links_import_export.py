"""CSV import and CSV / JSON Lines export of links: CLI and API, against real PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from control.errors import ApiError
from control.links import csvio
from control.links.schemas import LinkIn
from control.settings import ControlSettings
from ricochet.cli import main
from tests.integration.conftest import Seed

LINKS = "/api/v1/links"
HEADER = [
    "Destination",  # header names are case-insensitive
    "slug",
    "tags",
    "space",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "expires_at",
    "track_conversions",
]
# Spreadsheet row -> (column, bad value, the error code it must be reported with).
BAD = {
    17: ("Destination", "ftp://files.example/spring.pdf", "invalid_destination"),
    2500: ("slug", "admin", "slug_reserved"),
    5000: ("expires_at", "next tuesday", "validation_failed"),
    7500: ("space", "Nowhere", "space_not_found"),
    9999: ("slug", "spring-00000", "duplicate_slug"),  # row 2's slug again
}


def _env(settings: ControlSettings) -> dict[str, str]:
    return {
        "RICOCHET_DATABASE_URL": settings.database_url,
        "RICOCHET_REDIS_URL": settings.redis_url,
        "RICOCHET_SECRET_KEY": settings.secret_key,
        "RICOCHET_DEFAULT_DOMAIN": settings.default_domain,
        "RICOCHET_SHORT_URL_SCHEME": settings.short_url_scheme,  # short_url as the API's
    }


def _cli(settings: ControlSettings, *args: str) -> Result:
    return CliRunner().invoke(main, ["links", *args], env=_env(settings))


def _count(settings: ControlSettings, workspace_id: str) -> int:
    with psycopg.connect(settings.libpq_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM links WHERE workspace_id = %s AND deleted_at IS NULL",
            (workspace_id,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _campaign_row(i: int) -> dict[str, str]:
    return {
        "Destination": f"https://shop.example/spring/{i}",
        "slug": f"spring-{i:05d}",
        "tags": "spring|email" if i % 2 else "spring;social",
        "space": "Retail" if i % 10 == 0 else "",
        "utm_source": "newsletter" if i % 2 else "instagram",
        "utm_medium": "email" if i % 2 else "social",
        "utm_campaign": "spring-2027",
        "utm_content": f"v{i % 3}",
        "expires_at": "2027-06-30" if i % 100 == 0 else "",
        "track_conversions": "yes" if i % 5 == 0 else "",
    }


def _write_campaign(path: Path, rows: int, bad: dict[int, tuple[str, str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, HEADER)
        writer.writeheader()
        for i in range(rows):
            row = _campaign_row(i)
            if i + 2 in bad:
                column, value, _ = bad[i + 2]
                row[column] = value
            writer.writerow(row)


def _read_csv(path_or_text: Path | str) -> list[dict[str, str]]:
    if isinstance(path_or_text, Path):
        path_or_text = path_or_text.read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(path_or_text, newline="")))


@pytest.fixture
def retail(api: TestClient, seed: Seed) -> None:
    """Alice's space that every tenth campaign row names."""
    response = api.post("/api/v1/spaces", json={"name": "Retail"}, headers=seed.alice.auth)
    assert response.status_code == 201, response.text


# -- the 10,000-row import ---------------------------------------------------------------


def test_ten_thousand_rows_create_the_good_ones_and_a_second_run_creates_nothing(
    control_settings: ControlSettings, api: TestClient, seed: Seed, retail: None, tmp_path: Path
) -> None:
    source = tmp_path / "spring.csv"
    _write_campaign(source, 10_000, BAD)
    first_results, second_results = tmp_path / "first.csv", tmp_path / "second.csv"
    ws = seed.alice.workspace_id

    started = time.monotonic()
    first = _cli(
        control_settings, "import", str(source), "--workspace", ws, "--results", str(first_results)
    )
    elapsed = time.monotonic() - started
    print(f"\nfirst 10,000-row CLI import: {elapsed:.2f} s ({10_000 / elapsed:,.0f} rows/s)")

    assert first.exit_code == 1, first.output  # some rows invalid
    assert "created 9995, already there 0, invalid 5" in first.stdout
    for number, (_, _, code) in BAD.items():
        assert f"row {number}: {code}: " in first.stdout
    assert _count(control_settings, ws) == 9995
    rows = _read_csv(first_results)
    assert [int(r["row"]) for r in rows] == list(range(2, 10_002))
    invalid = {int(r["row"]): r["error_code"] for r in rows if r["status"] == "invalid"}
    assert invalid == {number: code for number, (_, _, code) in BAD.items()}
    assert {r["status"] for r in rows if int(r["row"]) not in BAD} == {"created"}
    assert rows[0]["short_url"] == "http://sho.rt/spring-00000"
    assert "Row 2 already uses the slug 'spring-00000'" in rows[9999 - 2]["error_detail"]

    # What was stored is what the row said.
    [link] = api.get(LINKS, params={"q": "spring-00100"}, headers=seed.alice.auth).json()["data"]
    assert link["space"] == "Retail"
    assert link["tags"] == ["social", "spring"]
    assert link["utm"] == {
        "source": "instagram",
        "medium": "social",
        "campaign": "spring-2027",
        "content": "v1",
    }
    assert link["expires_at"] == "2027-07-01T00:00:00Z"  # through 2027-06-30, UTC
    assert link["track_conversions"] is True

    second = _cli(
        control_settings, "import", str(source), "--workspace", ws, "--results", str(second_results)
    )

    assert second.exit_code == 1, second.output
    assert "created 0, already there 9995, invalid 5" in second.stdout
    assert _count(control_settings, ws) == 9995
    again = _read_csv(second_results)
    assert {int(r["row"]): r["error_code"] for r in again if r["status"] == "invalid"} == invalid
    good_first = {
        r["row"]: (r["link_id"], r["short_url"]) for r in rows if r["status"] != "invalid"
    }
    good_second = {
        r["row"]: (r["link_id"], r["short_url"]) for r in again if r["status"] != "invalid"
    }
    assert {r["status"] for r in again if r["status"] != "invalid"} == {"already_there"}
    assert good_second == good_first  # the same links, found again


# -- smaller imports -------------------------------------------------------------------


def test_invalid_rows_are_listed_up_to_fifty_and_all_are_in_the_results_file(
    control_settings: ControlSettings, seed: Seed, retail: None, tmp_path: Path
) -> None:
    source = tmp_path / "bad.csv"
    bad = {n: ("Destination", "mailto:x@example.com", "invalid_destination") for n in range(2, 62)}
    _write_campaign(source, 70, bad)
    results = tmp_path / "results.csv"

    out = _cli(
        control_settings,
        "import",
        str(source),
        "--workspace",
        seed.alice.workspace_id,
        "--results",
        str(results),
        "--batch",
        "25",
    )

    assert out.exit_code == 1
    assert "created 10, already there 0, invalid 60" in out.stdout
    assert out.stdout.count(": invalid_destination: ") == 50
    assert f"… and 10 more (all in {results})" in out.stdout
    assert sum(r["status"] == "invalid" for r in _read_csv(results)) == 60
    assert out.stderr.count(" rows: ") == 3  # not a terminal: a line per batch of 25


def test_dry_run_checks_every_row_and_writes_nothing(
    control_settings: ControlSettings, seed: Seed, retail: None, tmp_path: Path
) -> None:
    source = tmp_path / "plan.csv"
    _write_campaign(source, 20, {5: ("space", "Nowhere", "space_not_found")})

    out = _cli(
        control_settings, "import", str(source), "--workspace", seed.alice.workspace_id, "--dry-run"
    )

    assert out.exit_code == 1
    assert "would create 19, already there 0, invalid 1" in out.stdout
    assert "row 5: space_not_found: " in out.stdout
    assert _count(control_settings, seed.alice.workspace_id) == 0


def test_usage_errors_exit_2_and_write_nothing(
    control_settings: ControlSettings, seed: Seed, tmp_path: Path
) -> None:
    ws = seed.alice.workspace_id
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("destination,slug,Campaign Name,budget\nshop.example,a,x,1\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    no_destination = tmp_path / "nodest.csv"
    no_destination.write_text("slug,tags\na,b\n")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("destination,utm_campaign\nshop.example,caf\xe9\n".encode("latin-1"))
    good = tmp_path / "good.csv"
    good.write_text("destination\nshop.example\n")

    unknown_out = _cli(control_settings, "import", str(unknown), "--workspace", ws)
    empty_out = _cli(control_settings, "import", str(empty), "--workspace", ws)
    no_dest_out = _cli(control_settings, "import", str(no_destination), "--workspace", ws)
    latin1_out = _cli(control_settings, "import", str(latin1), "--workspace", ws)
    missing_out = _cli(control_settings, "import", str(tmp_path / "nope.csv"), "--workspace", ws)
    no_ws = _cli(
        control_settings, "import", str(good), "--workspace", "00000000-0000-0000-0000-000000000000"
    )
    bad_ws = _cli(control_settings, "import", str(good), "--workspace", "alice")
    big_batch = _cli(control_settings, "import", str(good), "--workspace", ws, "--batch", "5000")

    for result in (
        unknown_out,
        empty_out,
        no_dest_out,
        latin1_out,
        missing_out,
        no_ws,
        bad_ws,
        big_batch,
    ):
        assert result.exit_code == 2, result.output
    assert "Unknown columns: 'campaign_name', 'budget'" in unknown_out.output
    assert "The file is empty" in empty_out.output
    assert "no destination column" in no_dest_out.output
    assert "cannot read" in latin1_out.output
    assert "no such workspace" in no_ws.output
    assert _count(control_settings, ws) == 0


def test_header_only_file_imports_nothing_and_succeeds(
    control_settings: ControlSettings, seed: Seed, tmp_path: Path
) -> None:
    source = tmp_path / "header.csv"
    source.write_text("destination,slug\n\n")

    out = _cli(control_settings, "import", str(source), "--workspace", seed.alice.workspace_id)

    assert out.exit_code == 0, out.output
    assert "created 0, already there 0, invalid 0" in out.stdout


def test_a_bom_and_crlf_file_from_a_spreadsheet_imports(
    control_settings: ControlSettings, seed: Seed, tmp_path: Path
) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes(
        "\ufeffDestination ,Slug,UTM Source,Tags\r\n"
        'shop.example/a,Excel-A,café,"one|two"\r\n'
        ",,,\r\n"  # a blank spreadsheet row: skipped, still counted
        "shop.example/b,excel-b,,\r\n".encode()
    )
    results = tmp_path / "r.csv"

    out = _cli(
        control_settings,
        "import",
        str(source),
        "--workspace",
        seed.alice.workspace_id,
        "--results",
        str(results),
    )

    assert out.exit_code == 0, out.output
    assert [(r["row"], r["status"], r["short_url"]) for r in _read_csv(results)] == [
        ("2", "created", "http://sho.rt/excel-a"),
        ("4", "created", "http://sho.rt/excel-b"),
    ]


# -- export ----------------------------------------------------------------------------


def test_export_streams_every_page_in_csv_and_jsonl_from_cli_and_api(
    control_settings: ControlSettings, api: TestClient, seed: Seed, retail: None, tmp_path: Path
) -> None:
    ws = seed.alice.workspace_id
    source = tmp_path / "links.csv"
    _write_campaign(source, 450, {})  # more than two pages of 200
    assert _cli(control_settings, "import", str(source), "--workspace", ws).exit_code == 0
    for slug in ("spring-00001", "spring-00002", "spring-00003"):
        [link] = api.get(LINKS, params={"q": slug}, headers=seed.alice.auth).json()["data"]
        patched = api.patch(
            f"{LINKS}/{link['id']}", json={"archived": True}, headers=seed.alice.auth
        )
        assert patched.status_code == 200
    cli_csv = tmp_path / "export.csv"

    cli = _cli(control_settings, "export", "--workspace", ws, "--output", str(cli_csv))
    cli_jsonl = _cli(control_settings, "export", "--workspace", ws, "--format", "jsonl")
    api_csv = api.get(f"{LINKS}/export", headers=seed.alice.auth)
    api_jsonl = api.get(f"{LINKS}/export", params={"format": "jsonl"}, headers=seed.alice.auth)

    assert cli.exit_code == 0, cli.output
    assert "exported 447 links" in cli.stderr
    exported = _read_csv(cli_csv)
    assert list(exported[0]) == list(csvio.EXPORT_HEADER)
    assert len(exported) == 447 == len({r["id"] for r in exported})
    assert api_csv.status_code == 200, api_csv.text
    assert api_csv.headers["content-type"].startswith("text/csv")
    assert api_csv.headers["content-disposition"].startswith('attachment; filename="links-')
    assert api_csv.headers["content-disposition"].endswith('.csv"')
    assert _read_csv(api_csv.text) == exported  # CLI and API write the same file
    lines = cli_jsonl.stdout.splitlines()
    assert len(lines) == 447
    assert [json.loads(line)["id"] for line in lines] == [r["id"] for r in exported]
    assert api_jsonl.headers["content-type"] == "application/x-ndjson"
    assert api_jsonl.text.splitlines() == lines
    row = next(r for r in exported if r["slug"] == "spring-00100")
    assert row == {
        **row,
        "short_url": "http://sho.rt/spring-00100",
        "domain": "sho.rt",
        "destination": "https://shop.example/spring/100",
        "tags": "social|spring",
        "utm_source": "instagram",
        "utm_campaign": "spring-2027",
        "clicks": "0",
        "archived": "false",
        "expires_at": "2027-07-01T00:00:00Z",
    }

    # Filters, the same on both sides.
    email = _cli(control_settings, "export", "--workspace", ws, "--tag", "email")
    api_email = api.get(f"{LINKS}/export", params={"tag": "email"}, headers=seed.alice.auth)
    assert len(_read_csv(email.stdout)) == 223 == len(_read_csv(api_email.text))  # odd, unarchived
    only = _cli(control_settings, "export", "--workspace", ws, "--archived", "only")
    every = api.get(f"{LINKS}/export", params={"archived": "include"}, headers=seed.alice.auth)
    assert sorted(r["slug"] for r in _read_csv(only.stdout)) == [
        "spring-00001",
        "spring-00002",
        "spring-00003",
    ]
    assert len(_read_csv(every.text)) == 450
    found = _cli(control_settings, "export", "--workspace", ws, "--q", "spring-0044")
    assert len(_read_csv(found.stdout)) == 10

    # The exported file imports again as it is: everything is already there.
    again = _cli(control_settings, "import", str(cli_csv), "--workspace", ws)
    assert again.exit_code == 0, again.output
    assert "created 0, already there 447, invalid 0" in again.stdout


def test_export_refuses_bad_filters_before_writing(
    control_settings: ControlSettings, api: TestClient, seed: Seed, tmp_path: Path
) -> None:
    output = tmp_path / "never.csv"

    cli = _cli(
        control_settings,
        "export",
        "--workspace",
        seed.alice.workspace_id,
        "--domain",
        "nope.example",
        "--output",
        str(output),
    )
    response = api.get(
        f"{LINKS}/export", params={"domain": "nope.example"}, headers=seed.alice.auth
    )
    bad_format = api.get(f"{LINKS}/export", params={"format": "xlsx"}, headers=seed.alice.auth)

    assert cli.exit_code == 2
    assert "unknown_domain" in cli.output
    assert not output.exists()
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_domain"
    assert bad_format.status_code == 400
    assert bad_format.json()["code"] == "invalid_query"


def test_workspaces_are_isolated(
    control_settings: ControlSettings, api: TestClient, seed: Seed, retail: None, tmp_path: Path
) -> None:
    source = tmp_path / "alice.csv"
    _write_campaign(source, 30, {})
    assert (
        _cli(
            control_settings, "import", str(source), "--workspace", seed.alice.workspace_id
        ).exit_code
        == 0
    )

    bob_cli = _cli(control_settings, "export", "--workspace", seed.bob.workspace_id)
    bob_api = api.get(f"{LINKS}/export", headers=seed.bob.auth)
    bob_import = _cli(control_settings, "import", str(source), "--workspace", seed.bob.workspace_id)

    assert bob_cli.exit_code == 0
    assert _read_csv(bob_cli.stdout) == []
    assert bob_cli.stdout.startswith("id,short_url,slug,")  # the header, even when empty
    assert bob_api.status_code == 200
    assert _read_csv(bob_api.text) == []
    # Alice's slugs are taken, not "already there", for Bob: his import is refused row by row.
    assert bob_import.exit_code == 1
    assert "created 0, already there 0, invalid 30" in bob_import.stdout
    assert "slug_taken" in bob_import.stdout
    assert _count(control_settings, seed.bob.workspace_id) == 0


# -- API import ------------------------------------------------------------------------


def test_api_imports_a_csv_body_and_reports_each_row(api: TestClient, seed: Seed) -> None:
    body = (
        "\ufeffdestination,slug,tags,expires_at,external_id\r\n"
        "shop.example/1,api-one,a|b,2027-01-01T12:00:00+02:00,\r\n"
        "javascript:alert(1),api-two,,,\r\n"
        "shop.example/3,,,,crm-3\r\n"
    )

    first = api.post(
        f"{LINKS}/import",
        content=body.encode(),
        headers={**seed.alice.auth, "content-type": "text/csv"},
    )
    second = api.post(
        f"{LINKS}/import",
        content=body.encode(),
        headers={**seed.alice.auth, "content-type": "text/csv; charset=utf-8"},
    )

    assert first.status_code == 200, first.text
    out = first.json()
    assert (out["created"], out["already_there"], out["invalid"]) == (2, 0, 1)
    one, two, three = out["rows"]
    assert (one["row"], one["status"], one["short_url"]) == (2, "created", "http://sho.rt/api-one")
    assert two["row"] == 3
    assert two["status"] == "invalid"
    assert two["error"]["code"] == "invalid_destination"
    assert two["error"]["field"] == "destination"
    assert (three["row"], three["status"]) == (4, "created")
    link = api.get(f"{LINKS}/{one['link_id']}", headers=seed.alice.auth).json()
    assert link["expires_at"] == "2027-01-01T10:00:00Z"
    assert link["tags"] == ["a", "b"]
    # Again: the slugged row and the external_id row (no slug) are already there.
    again = second.json()
    assert (again["created"], again["already_there"], again["invalid"]) == (0, 2, 1)
    assert again["rows"][0]["short_url"] == "http://sho.rt/api-one"
    assert again["rows"][0]["link_id"] == one["link_id"]
    assert again["rows"][2]["link_id"] == three["link_id"]


def test_api_import_refuses_what_it_cannot_read(api: TestClient, seed: Seed) -> None:
    auth = seed.alice.auth
    unknown = api.post(
        f"{LINKS}/import",
        content=b"destination,colour\nshop.example,red\n",
        headers={**auth, "content-type": "text/csv"},
    )
    empty = api.post(f"{LINKS}/import", content=b"", headers={**auth, "content-type": "text/csv"})
    as_json = api.post(f"{LINKS}/import", json={"destination": "x"}, headers=auth)
    not_utf8 = api.post(
        f"{LINKS}/import",
        content="destination\ncafé.example\n".encode("latin-1"),
        headers={**auth, "content-type": "text/csv"},
    )
    huge = api.post(
        f"{LINKS}/import",
        content=b"destination\n" + b"shop.example\n" * 810_000,  # > 10 MB
        headers={**auth, "content-type": "text/csv"},
    )

    assert unknown.status_code == 422
    assert unknown.json()["code"] == "unknown_columns"
    assert unknown.json()["columns"] == ["colour"]
    assert empty.status_code == 422
    assert empty.json()["code"] == "empty_csv"
    assert as_json.status_code == 415
    assert not_utf8.status_code == 422
    assert not_utf8.json()["code"] == "invalid_csv"
    assert huge.status_code == 413
    assert huge.json()["code"] == "content_too_large"


def test_import_and_export_routes_are_not_taken_by_the_link_id_route(
    api: TestClient, seed: Seed
) -> None:
    export = api.get(f"{LINKS}/export", headers=seed.alice.auth)
    get_import = api.get(f"{LINKS}/import", headers=seed.alice.auth)

    assert export.status_code == 200
    assert export.text.startswith("id,short_url,")
    assert get_import.status_code == 404  # no such link "import"; never an import


# -- the pure reader -------------------------------------------------------------------


def _parse(text: str) -> list[tuple[int, LinkIn | ApiError]]:
    return list(csvio.parse_rows(io.StringIO(text, newline="")))


def test_reader_values_and_row_numbers() -> None:
    rows = _parse(
        "destination,tags,expires_at,forward_query,redirect_status,utm_source,id,clicks\n"
        "a.example, x | y ;z ,2027-03-31,Yes,301,'=SUM(A1),abc,3\n"
        "\n"
        '"b.example","multi\nline",2027-03-31T10:00:00Z,0,,,,\n'
        "c.example,,2027-03-31T10:00:00,,,,,\n"
        "d.example,,,maybe,,,,\n"
        "e.example,,,,303,,,\n"
    )

    assert [n for n, _ in rows] == [2, 4, 5, 6, 7]
    first = rows[0][1]
    assert isinstance(first, LinkIn)
    assert first.tags == ["x", "y", "z"]
    assert first.expires_at == dt.datetime(2027, 4, 1, tzinfo=dt.UTC)
    assert first.forward_query is True
    assert first.redirect_status == 301
    assert first.utm_source == "=SUM(A1)"  # the export's formula guard, removed again
    multiline = rows[1][1]  # one record over two lines: one spreadsheet row
    assert isinstance(multiline, ApiError)
    assert (multiline.code, multiline.extra["field"]) == ("invalid_tag", "tags")
    naive, flag, status = rows[2][1], rows[3][1], rows[4][1]
    assert isinstance(naive, ApiError)
    assert (naive.code, naive.extra["field"]) == ("validation_failed", "expires_at")
    assert isinstance(flag, ApiError)
    assert flag.extra["field"] == "forward_query"
    assert isinstance(status, ApiError)
    assert status.extra["field"] == "redirect_status"


def test_reader_refuses_duplicates_within_the_file() -> None:
    rows = _parse(
        "destination,slug,domain,external_id\n"
        "a.example,Same,,crm-1\n"
        "b.example,same,,\n"
        "c.example,same,go.brand.example,\n"
        "d.example,,,crm-1\n"
    )

    codes = [item.code if isinstance(item, ApiError) else "ok" for _, item in rows]
    assert codes == ["ok", "duplicate_slug", "ok", "duplicate_external_id"]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("", "empty_csv"),
        ("destination,Destination\n", "duplicate_columns"),
        ("slug\n", "missing_columns"),
        ("destination,password\n", "unknown_columns"),
        (",,\n", "missing_header"),
    ],
)
def test_reader_refuses_a_bad_header_at_once(header: str, code: str) -> None:
    with pytest.raises(csvio.HeaderError) as caught:
        csvio.parse_rows(io.StringIO(header, newline=""))
    assert caught.value.code == code
