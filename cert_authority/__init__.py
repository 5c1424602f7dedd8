"""The authority service (the composition root), in rooms that follow the flow:

    registry/   departments, licence types and their templates (证照类型)
    pki/        the CA service (provincial root, municipal branch), issued certificates, trust bundle
    eseals/     seal records (电子印章) and their service
    issuing/    issuance: face data, dates, layouts, sealed files, records, lifecycle, batches, reads
    checking/   verification against the registry, show-token checks
    holders/    holders' accounts and show tokens (亮证)
    sharing/    use by other departments: use codes, duty rules, annotated copies
    access/     API keys, staff accounts, passwords, refused calls
    store/      database, models and migrations, counters, the file store, audit rows

    services.py the domain services wired on one engine; demo.py the demo authority
    http/ web/ cli/ bench/   the outer rooms: the API, the pages, the command line, the benchmarks

Outer rooms use the domain rooms, never the reverse (tests/test_import_direction.py)."""
