"""A small CGRateS tariff plan with every feature the engine prices, for the rating tests."""

from pathlib import Path


def write_plan(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    headers = {
        "Destinations": "#Id,Prefix",
        "Timings": "#Id,Years,Months,MonthDays,WeekDays,Time",
        "Rates": "#Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart",
        "DestinationRates": "#Id,DestinationId,RatesTag,RoundingMethod,RoundingDecimals,MaxCost,MaxCostStrategy",
        "RatingPlans": "#Id,DestinationRatesId,TimingTag,Weight",
        "RatingProfiles": "#Tenant,Category,Subject,ActivationTime,RatingPlanId,RatesFallbackSubject",
    }
    for name, header in headers.items():
        (folder / f"{name}.csv").write_text(header + "\n" + files.get(name, "").strip() + "\n")
    return folder


BASE = {
    "Destinations": "NAT,212\nMOBILE,2126\nFR,33",
    "Timings": "PEAK,*any,*any,*any,1;2;3;4;5,08:00:00\nOFFPEAK,*any,*any,*any,*any,00:00:00\n"
    "NEWYEAR,*any,1,1,*any,00:00:00",
    "Rates": "R_PEAK,0.10,0.60,60s,60s,0s\nR_PEAK,0,0.30,60s,1s,60s\nR_OFF,0,0.12,60s,1s,0s\n"
    "R_FR,0.05,1.20,60s,30s,0s\nR_FREE,0,0,60s,60s,0s",
    "DestinationRates": "DR_PEAK,MOBILE,R_PEAK,*middle,4,0,\nDR_PEAK,NAT,R_OFF,*middle,4,0,\n"
    "DR_OFF,MOBILE,R_OFF,*up,2,1.5,*free\nDR_FR,FR,R_FR,*down,2,0.5,*disconnect\n"
    "DR_NY,MOBILE,R_FREE,*middle,4,0,",
    "RatingPlans": "RP_STD,DR_PEAK,PEAK,10\nRP_STD,DR_OFF,OFFPEAK,10\nRP_STD,DR_FR,*any,10\n"
    "RP_STD,DR_NY,NEWYEAR,30\nRP_CHEAP,DR_OFF,*any,10",
    "RatingProfiles": "op,call,*any,2026-01-01T00:00:00Z,RP_STD,\nop,call,vip,2026-06-01T00:00:00Z,RP_CHEAP,\n"
    "op,call,nofr,2026-01-01T00:00:00Z,RP_CHEAP,vip",
}
