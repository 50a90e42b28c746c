"""Every label of the console in Chinese (default) and English.

Pages never hold display strings: they call :func:`t` with a key. A key missing from a language
falls back to Chinese, and a test checks that both tables have the same keys.
"""

from __future__ import annotations

from nicegui import app

DEFAULT_LANGUAGE = "zh-CN"
LANGUAGES = ("zh-CN", "en")

ZH: dict[str, str] = {
    "customer.title": "用户资产：生命周期阶段",
    "customer.on": "日期",
    "customer.total": "{day} 日终会员共 {total} 人",
    "customer.stage": "阶段",
    "customer.members": "人数",
    "customer.flows": "阶段流转",
    "customer.from": "起始日",
    "customer.to": "截止日",
    "customer.flows.empty": "这段时间没有会员",
    "customer.flows.order": "截止日不能早于起始日",
    "stage.stranger": "陌生/新客",
    "stage.high_potential": "高潜",
    "stage.first_order": "首购",
    "stage.repeat": "复购",
    "stage.super": "超级用户",
    "stage.dormant": "沉睡",
    "stage.lost": "流失",
    "stage.new": "新加入",
    "stage.merged": "已合并",
    "app.title": "私域 Siyu",
    "login.title": "登录",
    "login.login": "账号",
    "login.password": "密码",
    "login.submit": "登录",
    "login.failed": "账号或密码不正确",
    "login.required": "请输入账号和密码",
    "nav.overview": "总览",
    "nav.customer": "用户资产",
    "nav.scale": "规模",
    "nav.active": "活跃",
    "nav.worth": "价值",
    "nav.efficiency": "效率",
    "nav.members": "会员",
    "nav.segments": "人群",
    "nav.campaigns": "活动",
    "nav.loyalty": "忠诚度",
    "nav.stores": "门店",
    "nav.staff": "员工与权限",
    "nav.settings": "设置",
    "nav.group.ccare": "C-CARE 看板",
    "nav.group.operate": "运营",
    "nav.group.manage": "管理",
    "header.logout": "退出登录",
    "header.language": "English",
    "coming.title": "即将推出",
    "coming.overview": "C-CARE 总览：用户资产规模、可运营资产、活跃、价值与效率的关键指标一屏看清。",
    "coming.customer": "用户资产：各生命周期阶段人数、可运营资产趋势，以及任意两个日期之间的阶段流转（桑基图）。",
    "coming.scale": "规模：按渠道、来源、门店、活动和推荐人统计的新增会员，以及新客首单转化。",
    "coming.active": "活跃：日/周/月活、到访频次、沉睡用户召回率，以及消息触达、打开和点击。",
    "coming.worth": "价值：GMV、ARPU、复购率，会员与非会员、各等级的购买频次和客单价对比。",
    "coming.efficiency": "效率：优惠券领取与核销、活动增量与 ROI、获客和召回成本。",
    "coming.members": "会员：按任意身份搜索（脱敏显示）、360° 视图、标签、导出与删除。",
    "coming.segments": "人群：可视化规则构建器，实时人数预估，保存与固化。",
    "coming.campaigns": "活动：目标 → 人群 → 权益 → 时间或触发 → 对照组、频控与预算的创建向导，以及增量效果。",
    "coming.loyalty": "忠诚度：优惠券模板、积分规则与积分商城、会员等级与联合会员映射。",
    "coming.staff": "员工与权限：员工账号、API 密钥和服务商授权。",
    "coming.settings": "设置：时区、免打扰时段、频控和生命周期阶段规则。",
    "stores.title": "门店",
    "stores.new": "新建门店",
    "stores.edit": "编辑门店",
    "stores.empty": "还没有门店。",
    "stores.map": "门店地图",
    "stores.count": "共 {n} 家门店",
    "stores.readonly": "你的角色只能查看门店。",
    "stores.limited": "你只能看到分配给你的门店。",
    "field.code": "门店编码",
    "field.code.hint": "留空则自动编号",
    "field.name": "名称",
    "field.kind": "类型",
    "field.status": "状态",
    "field.city": "城市",
    "field.address": "地址",
    "field.latitude": "纬度",
    "field.longitude": "经度",
    "field.actions": "操作",
    "kind.direct": "直营",
    "kind.franchise": "加盟",
    "status.open": "营业中",
    "status.closed": "已关闭",
    "action.save": "保存",
    "action.cancel": "取消",
    "action.edit": "编辑",
    "notify.saved": "已保存",
    "notify.error": "出错了：{detail}",
    "role.owner": "店主",
    "role.operator": "运营",
    "role.analyst": "分析师",
    "role.guide": "导购",
}

EN: dict[str, str] = {
    "customer.title": "User assets: lifecycle stages",
    "customer.on": "Day",
    "customer.total": "{total} members at the end of {day}",
    "customer.stage": "Stage",
    "customer.members": "Members",
    "customer.flows": "Stage flows",
    "customer.from": "From",
    "customer.to": "To",
    "customer.flows.empty": "No members in this period",
    "customer.flows.order": "'To' cannot be before 'From'",
    "stage.stranger": "Stranger",
    "stage.high_potential": "High potential",
    "stage.first_order": "First order",
    "stage.repeat": "Repeat",
    "stage.super": "Super",
    "stage.dormant": "Dormant",
    "stage.lost": "Lost",
    "stage.new": "Joined",
    "stage.merged": "Merged",
    "app.title": "Siyu",
    "login.title": "Sign in",
    "login.login": "Login",
    "login.password": "Password",
    "login.submit": "Sign in",
    "login.failed": "Wrong login or password",
    "login.required": "Enter your login and password",
    "nav.overview": "Overview",
    "nav.customer": "User assets",
    "nav.scale": "Scale",
    "nav.active": "Active",
    "nav.worth": "Worth",
    "nav.efficiency": "Efficiency",
    "nav.members": "Members",
    "nav.segments": "Segments",
    "nav.campaigns": "Campaigns",
    "nav.loyalty": "Loyalty",
    "nav.stores": "Stores",
    "nav.staff": "Staff & access",
    "nav.settings": "Settings",
    "nav.group.ccare": "C-CARE dashboard",
    "nav.group.operate": "Operate",
    "nav.group.manage": "Manage",
    "header.logout": "Sign out",
    "header.language": "中文",
    "coming.title": "Coming soon",
    "coming.overview": "C-CARE overview: user assets, operable assets, activity, worth and efficiency on one screen.",
    "coming.customer": "User assets: members per lifecycle stage, operable assets over time, and the stage "
    "flows between any two dates (Sankey).",
    "coming.scale": "Scale: new members by channel, source, store, campaign and referrer, and new-to-first-order "
    "conversion.",
    "coming.active": "Active: DAU/WAU/MAU, visit frequency, recall of the dormant, message reach, opens and clicks.",
    "coming.worth": "Worth: GMV, ARPU, repurchase rate; purchase frequency and order value of members vs "
    "non-members and by tier.",
    "coming.efficiency": "Efficiency: coupon claims and redemptions, campaign incrementality and ROI, cost per "
    "acquired and recalled member.",
    "coming.members": "Members: search by any identity (masked), the 360° view, tags, export and erasure.",
    "coming.segments": "Segments: a visual rule builder with a live count, saved and materialised audiences.",
    "coming.campaigns": "Campaigns: a wizard from goal to audience, treatment, schedule or trigger, holdout, caps "
    "and budget, and the incremental results.",
    "coming.loyalty": "Loyalty: coupon templates, points rules and the points mall, tiers and joint-membership "
    "mappings.",
    "coming.staff": "Staff & access: staff accounts, API keys and provider grants.",
    "coming.settings": "Settings: time zone, quiet hours, frequency caps and lifecycle stage rules.",
    "stores.title": "Stores",
    "stores.new": "New store",
    "stores.edit": "Edit store",
    "stores.empty": "No stores yet.",
    "stores.map": "Store map",
    "stores.count": "{n} stores",
    "stores.readonly": "Your role can only view stores.",
    "stores.limited": "You see only the stores assigned to you.",
    "field.code": "Store code",
    "field.code.hint": "leave empty to number automatically",
    "field.name": "Name",
    "field.kind": "Type",
    "field.status": "Status",
    "field.city": "City",
    "field.address": "Address",
    "field.latitude": "Latitude",
    "field.longitude": "Longitude",
    "field.actions": "Actions",
    "kind.direct": "Direct",
    "kind.franchise": "Franchise",
    "status.open": "Open",
    "status.closed": "Closed",
    "action.save": "Save",
    "action.cancel": "Cancel",
    "action.edit": "Edit",
    "notify.saved": "Saved",
    "notify.error": "Error: {detail}",
    "role.owner": "Owner",
    "role.operator": "Operator",
    "role.analyst": "Analyst",
    "role.guide": "Guide",
}

TABLES = {"zh-CN": ZH, "en": EN}


def current_language() -> str:
    """The signed-in browser's language (kept in the user's storage), Chinese by default."""
    try:
        language = app.storage.user.get("language", DEFAULT_LANGUAGE)
    except RuntimeError:  # outside a page (no user storage): the default
        return DEFAULT_LANGUAGE
    return language if language in TABLES else DEFAULT_LANGUAGE


def t(key: str, **values: object) -> str:
    """The label ``key`` in the current language, with ``{name}`` placeholders filled."""
    text = TABLES[current_language()].get(key) or ZH.get(key, key)
    return text.format(**values) if values else text


def toggle_language() -> None:
    app.storage.user["language"] = "en" if current_language() == "zh-CN" else "zh-CN"
