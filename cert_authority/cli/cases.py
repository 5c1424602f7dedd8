"""`ecas matters`, `ecas cases` and `ecas duty-rules`: service matters (办事事项), cases at the counter
(办件: checklist, reuse, sealed receipt) and duty rules (依职责用证). The operator at the command line
acts as administrator (recorded as `cli`): a case names the department it is handled by."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from cert_authority.actors import CLI_ACTOR
from cert_authority.cli.support import UsageError, friendly_errors, option_date, settings_from, writable_file
from cert_authority.http.routes.cases import case_public
from cert_authority.http.routes.sharing import duty_rule_public
from cert_authority.registry.spec_input import MAX_DEFINITION_BYTES, load_definition
from cert_authority.services import LicenceServices, licence_services
from cert_authority.sharing.cases import Case
from cert_authority.sharing.matters import parse_matter_spec
from cert_authority.sharing.stats import METRICS, GroupBy, Period, stats_xlsx
from cert_authority.timeutil import local_date

matters_app = typer.Typer(help="办事事项：登记与查看（所需材料、办理部门）", no_args_is_help=True)
cases_app = typer.Typer(help="办件：开具材料清单、复用证照、办结并出具材料复用清单", no_args_is_help=True)
duty_rules_app = typer.Typer(help="依职责用证规则：查看、授予、设定截止日、撤销", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="JSON 输出")]
BASIS_NAMES = {"duty_rule": "依职责", "consent": "持证人已同意", None: "须持证人同意（用证码）"}


def _services(ctx: typer.Context) -> LicenceServices:
    return licence_services(settings_from(ctx))


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


# --- matters -----------------------------------------------------------------------------------
@matters_app.command("register")
@friendly_errors
def matters_register(
    ctx: typer.Context, path: Annotated[Path, typer.Argument(help="事项定义文件（YAML 或 JSON）")]
) -> None:
    """登记办事事项（定义文件见 examples/matters/）。"""
    if path.stat().st_size > MAX_DEFINITION_BYTES:
        raise UsageError(f"定义文件 {path} 过大")
    spec = parse_matter_spec(load_definition(path.read_bytes(), path.name))
    matter = _services(ctx).matters.register(CLI_ACTOR, spec)
    typer.echo(f"已登记事项 {matter.name}（{matter.code}），所需材料 {len(matter.materials)} 项")


@matters_app.command("list")
@friendly_errors
def matters_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """列出已登记的办事事项。"""
    matters = _services(ctx).matters.list()
    if as_json:
        _echo_json([m.model_dump(mode="json") for m in matters])
        return
    for m in matters:
        reusable = sum(1 for material in m.materials if material.licence_type)
        counts = f"材料 {len(m.materials)} 项，其中证照 {reusable} 项"
        typer.echo(f"{m.code:28} {m.name}（{counts}；{','.join(m.departments)}）")


@matters_app.command("show")
@friendly_errors
def matters_show(
    ctx: typer.Context, code: Annotated[str, typer.Argument(help="事项代码")], as_json: JsonOption = False
) -> None:
    """查看一个事项的所需材料。"""
    matter = _services(ctx).matters.get(code)
    if as_json:
        _echo_json(matter.model_dump(mode="json"))
        return
    typer.echo(f"{matter.name}（{matter.code}）  办理部门：{'、'.join(matter.departments)}")
    for index, material in enumerate(matter.materials, 1):
        kind = f"证照 {material.licence_type}" if material.licence_type else "申请人提交"
        days = f"，申请日后至少 {material.valid_for_days} 天有效" if material.valid_for_days else ""
        typer.echo(f"  {index}. {material.name}（{kind}{days}）")


# --- cases -------------------------------------------------------------------------------------
def _checklist(case: Case) -> dict[str, Any]:
    """What `ecas cases open --json` prints, exactly."""
    return {
        "case": case.id,
        "materials": [
            {
                "name": m.name,
                "licence_type": m.licence_type,
                "candidates": [{"identifier": c.identifier, "basis": c.basis} for c in m.candidates],
            }
            for m in case.materials
        ],
    }


def _print_case(case: Case) -> None:
    number = f"，部门办件号 {case.case_number}" if case.case_number else ""
    status = "已办结" if case.status == "closed" else "办理中"
    typer.echo(f"办件 {case.id}：{case.matter_name}（{case.matter_code}{number}），申请人 {case.applicant}，{status}")
    for index, m in enumerate(case.materials, 1):
        if m.reused is not None:
            typer.echo(f"  {index}. {m.name}：已复用 {m.reused.identifier}（{m.reused.basis}）")
        elif m.licence_type is None:
            typer.echo(f"  {index}. {m.name}：申请人提交")
        elif not m.candidates:
            typer.echo(f"  {index}. {m.name}：申请人名下没有可用的此类证照，须申请人提交")
        else:
            typer.echo(f"  {index}. {m.name}：")
            for c in m.candidates:
                typer.echo(f"       {c.identifier}  {BASIS_NAMES[c.basis]}")


@cases_app.command("list")
@friendly_errors
def cases_list(
    ctx: typer.Context,
    department: Annotated[str | None, typer.Option(help="只列此部门（统一社会信用代码）的办件")] = None,
    closed: Annotated[bool, typer.Option("--closed", help="列已办结的办件（默认列办理中的）")] = False,
    as_json: JsonOption = False,
) -> None:
    """列出办件：办理中（或已办结）的，最新的在前。"""
    found = _services(ctx).cases.list_cases(CLI_ACTOR, department, "closed" if closed else "open")
    if as_json:
        rows = [
            {"case": c.id, "matter": c.matter_code, "department_uscc": c.department_uscc, "applicant": c.applicant,
             "case_number": c.case_number, "status": c.status, "opened_at": c.opened_at.isoformat(),
             "materials_required": c.required, "materials_reused": c.reused}
            for c in found
        ]
        _echo_json(rows)
        return
    if not found:
        typer.echo("没有办件")
    for c in found:
        number = f" 办件号 {c.case_number}" if c.case_number else ""
        progress = f"已复用 {c.reused}/{c.required}"
        typer.echo(f"{c.id:>6}  {c.matter_name}  {c.applicant}{number}  {progress}  {c.department_uscc}")


@cases_app.command("open")
@friendly_errors
def cases_open(
    ctx: typer.Context,
    department: Annotated[str, typer.Option(help="办理部门的统一社会信用代码")],
    matter: Annotated[str, typer.Option(help="事项代码")],
    applicant: Annotated[str, typer.Option(help="申请人代码：公民身份号码或统一社会信用代码")],
    case_number: Annotated[str | None, typer.Option(help="本部门业务系统的办件号")] = None,
    as_json: JsonOption = False,
) -> None:
    """为申请人开具办件：列出每项材料可复用的证照及用证依据。"""
    case = _services(ctx).cases.open(CLI_ACTOR, matter, applicant, department, case_number)
    if as_json:
        typer.echo(json.dumps(_checklist(case), ensure_ascii=False))
        return
    _print_case(case)


@cases_app.command("show")
@friendly_errors
def cases_show(
    ctx: typer.Context, case_id: Annotated[int, typer.Argument(help="办件编号", min=1)], as_json: JsonOption = False
) -> None:
    """查看办件：材料清单与已复用的证照。"""
    case = _services(ctx).cases.get(CLI_ACTOR, case_id)
    if as_json:
        _echo_json(case_public(case).model_dump(mode="json"))
        return
    _print_case(case)


@cases_app.command("reuse")
@friendly_errors
def cases_reuse(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(help="办件编号", min=1)],
    identifier: Annotated[
        str | None, typer.Option(help="申请人名下证照的证照标识（给出 --show-token 时可省略）")
    ] = None,
    use_code: Annotated[str | None, typer.Option(help="持证人给办理部门的用证码")] = None,
    show_token: Annotated[str | None, typer.Option(help="持证人当面出示的亮证码（ECT1.…），只能用一次")] = None,
    copy: Annotated[Path | None, typer.Option(help="把加注件 PDF 写入此文件", callback=writable_file)] = None,
    as_json: JsonOption = False,
) -> None:
    """复用申请人的证照：取得照面信息与加注件，记入用证记录。"""
    services = _services(ctx)
    reuse = services.cases.reuse(CLI_ACTOR, case_id, identifier, use_code, show_token)
    use = reuse.use
    if copy is not None and use.copy_token is not None:
        copy.write_bytes(services.sharing.shared_file(use.copy_token))
    base = services.cases.pki.settings.base_url
    if as_json:
        data = {
            "case": reuse.case_id,
            "material": reuse.material,
            "identifier": use.identifier,
            "name": use.name,
            "basis": reuse.basis,
            "consent": reuse.consent,
            "face_data": use.face_data,
            "copy_url": None if use.copy_token is None else f"{base}/api/v1/shared/{use.copy_token}",
            "copy_expires_at": None if use.copy_expires_at is None else use.copy_expires_at.isoformat(),
        }
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    typer.echo(f"材料「{reuse.material}」已复用 {use.name} {use.identifier}（{BASIS_NAMES[reuse.basis]}）")
    for key, value in use.face_data.items():
        typer.echo(f"    {key}: {value}")
    if copy is not None:
        limited = "亮证码只出示了部分照面信息：没有加注件（加注件含全部照面信息）"
        typer.echo(f"加注件已写入 {copy}" if use.copy_token is not None else limited)


@cases_app.command("close")
@friendly_errors
def cases_close(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(help="办件编号", min=1)],
    output: Annotated[Path, typer.Option("-o", "--output", help="材料复用清单 PDF 写入此文件", callback=writable_file)],
) -> None:
    """办结办件：出具加盖电子印章的材料复用清单（再次办结得到同一份清单）。"""
    receipt = _services(ctx).cases.close(CLI_ACTOR, case_id)
    output.write_bytes(receipt.pdf)
    typer.echo(f"办件 {case_id} 已办结；材料复用清单已写入 {output}（SM3 {receipt.sm3}）")


# --- duty rules --------------------------------------------------------------------------------
@duty_rules_app.command("list")
@friendly_errors
def duty_rules_list(
    ctx: typer.Context,
    department: Annotated[str | None, typer.Option(help="只看此部门")] = None,
    type_code: Annotated[str | None, typer.Option("--type", help="只看此证照类型")] = None,
    as_json: JsonOption = False,
) -> None:
    """列出依职责用证规则（含已撤销、已过期的）。"""
    rules = _services(ctx).duty_rules
    today = local_date(rules.clock())
    found = [duty_rule_public(r, today) for r in rules.list(CLI_ACTOR, department, type_code)]
    if as_json:
        _echo_json([r.model_dump(mode="json") for r in found])
        return
    for r in found:
        scope = "、".join(r.matters) if r.matters else "一切用证"
        until = f"至 {r.valid_until}" if r.valid_until else "长期"
        typer.echo(f"{r.id:>4}  {r.state:9} {r.department_uscc}  {r.type_code}  {until}  {scope}")


@duty_rules_app.command("add")
@friendly_errors
def duty_rules_add(
    ctx: typer.Context,
    department: Annotated[str, typer.Option(help="用证部门的统一社会信用代码")],
    type_code: Annotated[str, typer.Option("--type", help="证照类型代码")],
    matter: Annotated[
        list[str] | None, typer.Option(help="只在办理此事项时适用（可重复）；不给出则适用于一切用证")
    ] = None,
    valid_until: Annotated[str | None, typer.Option(help="最后适用日 YYYY-MM-DD（含）；不给出则长期有效")] = None,
) -> None:
    """授予部门依职责使用某类证照。"""
    until = option_date(valid_until, "--valid-until")
    rule = _services(ctx).duty_rules.add(CLI_ACTOR, department, type_code, matter, until)
    typer.echo(f"依职责用证规则 {rule.id}：{rule.department_uscc} 可使用 {rule.type_code}")


@duty_rules_app.command("withdraw")
@friendly_errors
def duty_rules_withdraw(ctx: typer.Context, rule_id: Annotated[int, typer.Argument(help="规则编号", min=1)]) -> None:
    """撤销依职责用证规则（记录保留）。"""
    rule = _services(ctx).duty_rules.withdraw(CLI_ACTOR, rule_id)
    typer.echo(f"已撤销依职责用证规则 {rule.id}（{rule.department_uscc} / {rule.type_code}）")


@duty_rules_app.command("expire")
@friendly_errors
def duty_rules_expire(
    ctx: typer.Context,
    rule_id: Annotated[int, typer.Argument(help="规则编号", min=1)],
    on: Annotated[str, typer.Option(help="最后适用日 YYYY-MM-DD（含）")],
) -> None:
    """设定依职责用证规则的最后适用日。"""
    day = option_date(on, "--on")
    assert day is not None
    rule = _services(ctx).duty_rules.expire(CLI_ACTOR, rule_id, day)
    typer.echo(f"依职责用证规则 {rule.id} 适用至 {rule.valid_until}")



# --- statistics --------------------------------------------------------------------------------
@friendly_errors
def stats(
    ctx: typer.Context,
    start: Annotated[str | None, typer.Option("--from", help="起始日 YYYY-MM-DD（含），默认截止日前 29 天")] = None,
    end: Annotated[str | None, typer.Option("--to", help="截止日 YYYY-MM-DD（含），默认今天")] = None,
    by: Annotated[str | None, typer.Option(help="分组：department、type、matter")] = None,
    period: Annotated[str, typer.Option(help="统计周期：day、month、quarter")] = "day",
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV 输出")] = False,
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help="另存为 Excel 文件（XLSX）")] = None,
) -> None:
    """统计：颁证、用证、亮证核验、办件、所需材料、复用材料与复用率（减材料）。"""
    if by not in (None, "department", "type", "matter"):
        raise UsageError(f"--by 应为 department、type 或 matter，收到 {by!r}")
    if period not in ("day", "month", "quarter"):
        raise UsageError(f"--period 应为 day、month 或 quarter，收到 {period!r}")
    since, until = option_date(start, "--from"), option_date(end, "--to")
    result = _services(ctx).stats.compute(CLI_ACTOR, since, until, cast(GroupBy | None, by), cast(Period, period))
    if xlsx is not None:
        xlsx.write_bytes(stats_xlsx(result))
        typer.echo(f"统计表已写入 {xlsx}", err=as_json or as_csv)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    if as_csv:
        typer.echo(result.to_csv(), nl=False)
        return
    header = ("颁证", "用证", "亮证核验", "办件", "所需材料", "复用材料", "复用率")
    typer.echo(f"{result.start} 至 {result.end}，按{ {'day': '日', 'month': '月', 'quarter': '季度'}[period] }统计")
    typer.echo(f"{'周期':12} {'分组':24} " + " ".join(f"{h:>6}" for h in header))
    for row in (*result.rows, result.totals):
        rate = "—" if row.reuse_rate is None else f"{row.reuse_rate:.0%}"
        figures = " ".join(f"{row.counts[m]:>8}" for m in METRICS)
        typer.echo(f"{row.period:14} {row.key or '':26} {figures} {rate:>8}")
