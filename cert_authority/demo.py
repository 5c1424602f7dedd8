"""`ecas demo`: a complete local authority on the embedded default (SQLite, local files): the CA,
three departments, the example licence types, a round e-seal per department and a few dozen sealed
licences for a handful of holders; the example matters, a duty rule and a holder's standing
authorisation, so a case can be run at the counter. Running it again reuses what exists: nothing is
duplicated or replaced (licences are issued with Idempotency-Keys, so a second run adds none)."""

from __future__ import annotations

import datetime as dt
import io
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from sqlmodel import Session, col, select

from cert_authority.access.staff import StaffAccounts
from cert_authority.actors import CLI_ACTOR
from cert_authority.errors import NoActiveSealError, NotFoundError
from cert_authority.eseals.schemas import SealCreate
from cert_authority.pki.service import PkiService
from cert_authority.registry.schemas import DepartmentCreate
from cert_authority.registry.service import RegistryService
from cert_authority.registry.spec_input import load_definition, parse_type_spec
from cert_authority.services import LicenceServices, licence_services_for
from cert_authority.settings import Settings
from cert_authority.sharing.matters import parse_matter_spec
from cert_authority.store.models import StaffAccountRow
from cert_authority.timeutil import local_date
from keys.keystore import create_key_file, open_key_file
from keys.uscc import uscc_check_character
from templates.identifier import ID_CHECK, ID_WEIGHTS

EXAMPLE_TYPES = Path(__file__).resolve().parent.parent / "examples" / "types"
EXAMPLE_MATTERS = EXAMPLE_TYPES.parent / "matters"
FOOD_TYPE = "11100000MA0000001Q001"
BUSINESS_TYPE = "11100000MA0000001Q002"
VOCATIONAL_TYPE = "11100000MA0000002U001"
DRAINAGE_TYPE = "11100000MA0000003Y001"
SEAL_PURPOSE = "电子证照专用章"


@dataclass(frozen=True)
class DemoDepartment:
    name: str
    uscc: str
    legal_representative: str  # 法定代表人, recorded with the seal application


DEPARTMENTS = (
    DemoDepartment("演示市市场监督管理局", "11350100MB00000100", "陈明"),
    DemoDepartment("演示市人力资源和社会保障局", "11350100MB00000201", "林华"),
    DemoDepartment("演示市城市管理局", "11350100MB00000302", "郑军"),
)
DEMO_AREA_CODE = "350100"


def ensure_demo_kek(settings: Settings) -> bool:
    """Without ECAS_KEK, create a random demo passphrase file (0600). True when created."""
    if settings.kek is not None or settings.demo_kek_path.exists():
        return False
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(settings.demo_kek_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32))
    return True


def build_demo(
    pki: PkiService, registry: RegistryService, now: dt.datetime, services: LicenceServices | None = None
) -> list[str]:
    """Set up the CA, the demo departments, the example licence types, a seal per department and
    the demo licences; return what was done (empty when everything was there already)."""
    done = []
    if not pki.initialised:
        pki.init(now)
        done.append("创建根CA与分中心CA")
    services = services or licence_services_for(pki, registry)
    done += register_departments(registry)
    done += register_example_types(registry)
    done += register_seals(services, now)
    done += issue_demo_licences(services, now)
    done += register_demo_holders(services)
    staff = StaffAccounts(registry.engine)
    done += register_demo_staff(staff)
    done += register_demo_signin_key(staff, demo_signin_key_path(pki.settings))
    done += register_example_matters(services)
    done += grant_demo_bases(services, now)
    return done


def register_departments(registry: RegistryService) -> list[str]:
    known = {d.uscc for d in registry.list_departments()}
    done = []
    for department in DEPARTMENTS:
        if department.uscc not in known:
            registry.create_department(
                DepartmentCreate(
                    name=department.name,
                    uscc=department.uscc,
                    area_code=DEMO_AREA_CODE,
                    level="city",
                    roles=["issuer", "user"],
                    contact="演示数据",
                )
            )
            done.append(f"登记部门 {department.name}")
    return done


def register_example_types(registry: RegistryService) -> list[str]:
    done = []
    for path in sorted(EXAMPLE_TYPES.glob("*.yaml")):
        spec = parse_type_spec(load_definition(path.read_bytes(), path.name))
        try:
            registry.get_type(spec.code)
            continue
        except NotFoundError:
            pass
        registry.register_type(spec, {}, CLI_ACTOR)
        done.append(f"登记证照类型 {spec.name}（{spec.code}）")
    return done


def register_seals(services: LicenceServices, now: dt.datetime) -> list[str]:
    """A generated round seal (电子证照专用章) for every demo department without an active one: the
    demo operator applies and approves it (audited as both steps)."""
    done = []
    for department in DEPARTMENTS:
        try:
            services.seals.active_seal(department.uscc, now)
            continue
        except NoActiveSealError:
            pass
        application = SealCreate(
            department_uscc=department.uscc,
            name=f"{department.name}{SEAL_PURPOSE}",
            legal_representative=department.legal_representative,
            purpose=SEAL_PURPOSE,
        )
        seal = services.seals.register(CLI_ACTOR, application, now=now)
        done.append(f"为{department.name}备案电子印章 {seal.es_id}（印章证书 {seal.cert_serial}，已审批）")
    return done


# --- demo holders and licences ------------------------------------------------------------------
def demo_uscc(area_code: str, number: int) -> str:
    """A USCC of an enterprise (登记管理部门 9, 类别 1) with a valid GB 32100 check character."""
    first17 = f"91{area_code}MA{number:07d}"
    return first17 + uscc_check_character(first17)


def demo_citizen_id(area_code: str, birth: dt.date, sequence: int) -> str:
    """A citizen ID number with a real birth date and a valid GB 11643 check character."""
    first17 = f"{area_code}{birth:%Y%m%d}{sequence:03d}"
    return first17 + ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


@dataclass(frozen=True)
class Company:
    name: str
    district: str  # area code of the district
    representative: str
    address: str  # in 演示市
    business_format: str
    discharger_type: str

    def uscc(self, index: int) -> str:
        return demo_uscc(self.district, index + 1)


@dataclass(frozen=True)
class Person:
    name: str
    sex: str
    birth: dt.date
    occupation: str
    grade: str
    scores: tuple[int, int]

    def id_number(self, index: int) -> str:
        # The 17th digit is odd for men, even for women (GB 11643).
        sequence = 10 * (index + 1) + (1 if self.sex == "男" else 2)
        return demo_citizen_id("350102", self.birth, sequence)


COMPANIES = (
    Company("演示市鼓楼区好味道餐饮有限公司", "350102", "林小明", "鼓楼区五四路100号", "餐饮服务经营者", "餐饮"),
    Company("演示市台江区闽味轩餐饮管理有限公司", "350103", "陈建华", "台江区江滨中大道8号", "餐饮服务经营者", "餐饮"),
    Company("演示市仓山区鲜果坊食品有限公司", "350104", "黄秀英", "仓山区金山大道66号", "食品销售经营者", "其他"),
    Company("演示市晋安区和顺食品销售有限公司", "350111", "吴志强", "晋安区福新东路203号", "食品销售经营者", "其他"),
    Company("演示市马尾区海丰中央厨房有限公司", "350105", "郑海峰", "马尾区江滨东大道18号", "中央厨房", "工业"),
    Company("演示市长乐区乐康团膳配送有限公司", "350112", "刘丽萍", "长乐区吴航路90号", "集体用餐配送单位", "工业"),
    Company("演示市鼓楼区康宁医院", "350102", "张卫东", "鼓楼区杨桥中路120号", "单位食堂", "医疗"),
    Company("演示市高新区清源食品加工有限公司", "350121", "郑国强", "高新区创新路88号", "食品销售经营者", "工业"),
    Company("演示市台江区洁美洗车服务有限公司", "350103", "王立新", "台江区广达路35号", "食品销售经营者", "洗车"),
    Company("演示市仓山区城建第三工程有限公司", "350104", "李建设", "仓山区盘屿路12号", "单位食堂", "建筑施工"),
)
PERSONS = (
    Person("陈晓华", "女", dt.date(1990, 5, 17), "中式烹调师", "三级/高级工", (86, 91)),
    Person("林志强", "男", dt.date(1985, 11, 2), "电工", "四级/中级工", (78, 84)),
    Person("黄丽娟", "女", dt.date(1993, 3, 28), "育婴员", "五级/初级工", (92, 88)),
    Person("张伟", "男", dt.date(1979, 8, 9), "焊工", "二级/技师", (81, 95)),
    Person("王芳", "女", dt.date(1996, 12, 30), "美容师", "四级/中级工", (74, 80)),
    Person("李建国", "男", dt.date(1968, 1, 15), "汽车维修工", "一级/高级技师", (90, 93)),
    Person("刘洋", "男", dt.date(2000, 6, 6), "中式面点师", "五级/初级工", (69, 77)),
    Person("郑雅婷", "女", dt.date(1988, 10, 21), "茶艺师", "三级/高级工", (88, 90)),
    Person("吴海燕", "女", dt.date(1975, 4, 4), "保育师", "四级/中级工", (83, 79)),
    Person("周杰", "男", dt.date(1998, 9, 13), "西式烹调师", "四级/中级工", (76, 85)),
)


COMPANY_TYPES = ("有限责任公司（自然人投资或控股）", "有限责任公司（自然人独资）", "有限责任公司（法人独资）")
CAPITALS = ("壹佰万圆整", "伍拾万圆整", "叁佰万圆整", "贰佰万圆整")
APPROVAL = "（依法须经批准的项目，经相关部门批准后方可开展经营活动）"
BUSINESS_SCOPES = {
    "餐饮服务经营者": "餐饮服务；食品销售；餐饮管理；外卖递送服务。" + APPROVAL,
    "食品销售经营者": "食品销售；食用农产品零售；日用百货销售。" + APPROVAL,
    "": "食品生产；餐饮服务；食品销售；供应链管理服务。" + APPROVAL,
}


@dataclass(frozen=True)
class DemoLicence:
    type_code: str
    issuer: str
    key: str  # Idempotency-Key: the demo issues each licence once, however often it runs
    data: dict[str, Any]
    photo: bytes | None = None
    valid: tuple[dt.date, dt.date] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def demo_photo(index: int) -> bytes:
    """A neutral silhouette on a tinted ground (a PNG upload), different for every holder."""
    ground = ((221, 228, 236), (236, 226, 221), (224, 236, 221), (236, 233, 214), (229, 221, 236))[index % 5]
    image = Image.new("RGB", (300, 400), ground)
    draw = ImageDraw.Draw(image)
    shade = (150 + 8 * (index % 4), 160, 176 - 6 * (index % 3))
    draw.ellipse((95, 70, 205, 190), fill=shade)
    draw.ellipse((40, 210, 260, 470), fill=shade)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def demo_licences() -> list[DemoLicence]:
    licences = []
    food, vocational, drainage = DEPARTMENTS
    for i, company in enumerate(COMPANIES):
        code = company.uscc(i)
        licences.append(
            DemoLicence(
                FOOD_TYPE,
                food.uscc,
                f"demo:{FOOD_TYPE}:{i}",
                {
                    "operator_name": company.name,
                    "operator_code": code,
                    "legal_representative": company.representative,
                    "domicile": "演示市" + company.address,
                    "premises": "演示市" + company.address + "一层",
                    "business_format": company.business_format,
                    "business_items": "热食类食品制售；冷食类食品制售；预包装食品（含冷藏冷冻食品）销售"
                    if company.business_format != "食品销售经营者"
                    else "预包装食品（含冷藏冷冻食品）销售；散装食品（不含冷藏冷冻食品）销售",
                    "supervisor": company.name[:6] + "市场监督管理局",
                },
            )
        )
        established = dt.date(2012 + i % 10, 1 + (3 * i) % 12, 1 + (7 * i) % 28)
        licences.append(
            DemoLicence(
                BUSINESS_TYPE,
                food.uscc,
                f"demo:{BUSINESS_TYPE}:{i}",
                {
                    "uscc": code,
                    "company_name": company.name,
                    "company_type": COMPANY_TYPES[i % len(COMPANY_TYPES)],
                    "legal_representative": company.representative,
                    "registered_capital": CAPITALS[i % len(CAPITALS)],
                    "established": established.isoformat(),
                    "business_term": f"{established:%Y年%m月%d日}至长期",
                    "domicile": "演示市" + company.address,
                    "business_scope": BUSINESS_SCOPES.get(company.business_format, BUSINESS_SCOPES[""]),
                },
            )
        )
        start = dt.date(2026, 1 + i % 9, 1)
        end = dt.date(2031, 1 + i % 9, 1) - dt.timedelta(days=1)
        licences.append(
            DemoLicence(
                DRAINAGE_TYPE,
                drainage.uscc,
                f"demo:{DRAINAGE_TYPE}:{i}",
                {
                    "discharger_name": company.name,
                    "discharger_code": code,
                    "legal_representative": company.representative,
                    "address": "演示市" + company.address,
                    "discharger_type": company.discharger_type,
                    "outlets": f"共1个：1号排水口位于演示市{company.address}门外市政污水检查井W-{301 + i:04d}。",
                    "daily_volume": str(20 + 35 * i),
                    "pollutants": "化学需氧量（COD）≤500 mg/L；悬浮物（SS）≤400 mg/L；氨氮（以N计）≤45 mg/L；"
                    "动植物油≤100 mg/L；pH值6.5～9.5。执行《污水排入城镇下水道水质标准》（GB/T 31962-2015）B级标准。",
                    "validity_period": f"{start.isoformat()}/{end.isoformat()}",
                },
                valid=(start, end),
            )
        )
    for i, person in enumerate(PERSONS):
        licences.append(
            DemoLicence(
                VOCATIONAL_TYPE,
                vocational.uscc,
                f"demo:{VOCATIONAL_TYPE}:{i}",
                {
                    "holder_name": person.name,
                    "sex": person.sex,
                    "birth_date": person.birth.isoformat(),
                    "id_number": person.id_number(i),
                    "occupation": person.occupation,
                    "grade": person.grade,
                    "theory_score": str(person.scores[0]),
                    "skill_score": str(person.scores[1]),
                },
                photo=demo_photo(i),
            )
        )
    return licences


DEMO_PASSWORD = "ecas-demo-2026"  # noqa: S105 - the demo's logins, printed on the console
DEMO_HOLDERS = 3  # of the companies, and of the persons


def demo_holders() -> list[tuple[str, str]]:
    """(holder code, name) of the demo's holder accounts: the first companies and persons."""
    companies = [(c.uscc(i), c.name) for i, c in enumerate(COMPANIES[:DEMO_HOLDERS])]
    return companies + [(p.id_number(i), p.name) for i, p in enumerate(PERSONS[:DEMO_HOLDERS])]


def register_demo_holders(services: LicenceServices) -> list[str]:
    done = []
    for code, name in demo_holders():
        if not services.accounts.exists(code):
            services.accounts.create(code, name, DEMO_PASSWORD)
            done.append(f"建立持证人演示账号 {name}")
    return done


@dataclass(frozen=True)
class DemoStaff:
    username: str
    name: str
    role: str
    department: DemoDepartment | None
    duty: str


DEMO_STAFF = (
    DemoStaff("market", "张敏", "issuer", DEPARTMENTS[0], "市场监管局颁证窗口"),
    DemoStaff("hrss", "周文", "issuer", DEPARTMENTS[1], "人社局颁证窗口"),
    DemoStaff("counter", "李娜", "user", DEPARTMENTS[2], "城管局办事窗口：核验亮证码与证照文件"),
    DemoStaff("admin", "王海", "admin", None, "系统管理员"),
)


def register_demo_staff(staff: StaffAccounts) -> list[str]:
    done = []
    for member in DEMO_STAFF:
        if not staff.exists(member.username):
            uscc = member.department.uscc if member.department else None
            staff.create(member.username, member.name, member.role, uscc, DEMO_PASSWORD)
            done.append(f"建立工作人员演示账号 {member.username}（{member.duty}）")
    return done


def demo_signin_key_path(settings: Settings) -> Path:
    """The demo administrator's SM2 sign-in key (a UKey in a deployment), under the demo password."""
    return settings.data_dir / "demo-admin-signin.key.pem"


def register_demo_signin_key(staff: StaffAccounts, path: Path) -> list[str]:
    """Administrators sign in with an SM2 key (access/signin.py): the demo admin's is a key file."""
    admin = next(member for member in DEMO_STAFF if member.role == "admin")
    with Session(staff.engine) as session:
        row = session.exec(select(StaffAccountRow).where(col(StaffAccountRow.username) == admin.username)).one()
    assert row.id is not None
    if staff.signin.active_keys(row.id):
        return []
    if path.exists():
        public = open_key_file(path, DEMO_PASSWORD.encode()).public_key
    else:
        public = create_key_file(path, DEMO_PASSWORD.encode())
    staff.signin.register(CLI_ACTOR, admin.username, public.to_der(), "演示软件密钥")
    return [f"为管理员 {admin.username} 生成并登记 SM2 签名登录密钥 {path}"]


REVOKED_KEY = f"demo:{DRAINAGE_TYPE}:2"
REVOKED_REASON = "排水户擅自改变排水口位置，依法吊销（演示）"


def issue_demo_licences(services: LicenceServices, now: dt.datetime) -> list[str]:
    issued: dict[str, int] = {}
    revoked = ""
    for licence in demo_licences():
        result = services.issuance.issue_licence(
            CLI_ACTOR,
            licence.type_code,
            licence.data,
            photo=licence.photo,
            idempotency_key=licence.key,
            valid_from=licence.valid[0] if licence.valid else None,
            valid_until=licence.valid[1] if licence.valid else None,
            issuer_uscc=licence.issuer,
            now=now,
        )
        if not result.replayed:
            issued[result.licence.name] = issued.get(result.licence.name, 0) + 1
        if licence.key == REVOKED_KEY and result.licence.status == "issued":
            # One revoked licence, so the wallet and the counter can show what "not valid" looks like.
            services.lifecycle.revoke(CLI_ACTOR, result.licence.identifier, REVOKED_REASON, now=now)
            revoked = f"吊销{result.licence.name}（{result.licence.holder.name}，演示不可亮证的状态）"
    return [f"颁发{name} {count} 份" for name, count in issued.items()] + ([revoked] if revoked else [])


# --- matters at the counter ----------------------------------------------------------------------
DEMO_CASE_MATTER = "drainage-permit-catering"
AUTHORISATION_DAYS = 365


def register_example_matters(services: LicenceServices) -> list[str]:
    done = []
    for path in sorted(EXAMPLE_MATTERS.glob("*.yaml")):
        spec = parse_matter_spec(load_definition(path.read_bytes(), path.name))
        if not services.matters.exists(spec.code):
            services.matters.register(CLI_ACTOR, spec)
            done.append(f"登记办事事项 {spec.name}（{spec.code}）")
    return done


def grant_demo_bases(services: LicenceServices, now: dt.datetime) -> list[str]:
    """For a case at the counter out of the box (the counter's department is the urban management
    bureau): a duty rule for business licences in the catering drainage matter, and the first demo
    company's standing authorisation for that matter, which covers its food business licence."""
    done = []
    counter = DEPARTMENTS[2].uscc
    matters = (DEMO_CASE_MATTER,)
    rules = services.duty_rules.list(CLI_ACTOR, counter, BUSINESS_TYPE)
    if not any(r.matters == matters and r.in_force(local_date(now)) for r in rules):
        services.duty_rules.add(CLI_ACTOR, counter, BUSINESS_TYPE, matters)
        done.append(f"授予{DEPARTMENTS[2].name}办理「{DEMO_CASE_MATTER}」时依职责使用营业执照")
    code, name = demo_holders()[0]
    holder = services.accounts.holder(code)
    if services.authorisations.find(code, counter, DEMO_CASE_MATTER, now) is None:
        services.authorisations.grant(holder, counter, DEMO_CASE_MATTER, AUTHORISATION_DAYS)
        done.append(f"{name}授权{DEPARTMENTS[2].name}办理「{DEMO_CASE_MATTER}」时用证（{AUTHORISATION_DAYS} 天）")
    return done
