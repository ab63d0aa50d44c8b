import { readSettings, readSettingsText, tenantSettingsSchema } from "../../src/tenants/settings";

/** Tenant settings are parsed (zod) once per tenant record, however many callers read them. */
describe("readSettings: parsed once per tenant record", () => {
  let parse: jest.SpyInstance;
  beforeEach(() => {
    parse = jest.spyOn(tenantSettingsSchema, "parse");
  });
  afterEach(() => parse.mockRestore());

  it("parses one record once, however often it is read, and its result reads as itself", () => {
    const record = { settings: { otp: { codeLength: 8 } } };
    const first = readSettings(record.settings);
    for (let i = 0; i < 28; i++) expect(readSettings(record.settings)).toBe(first);
    expect(readSettings(first)).toBe(first);
    expect(first.otp.codeLength).toBe(8);
    expect(parse).toHaveBeenCalledTimes(1);
  });

  it("parses a changed record (a new object, as every read from the database is) again", () => {
    const before = readSettings({ otp: { codeLength: 8 } });
    const after = readSettings({ otp: { codeLength: 9 } });
    expect(parse).toHaveBeenCalledTimes(2);
    expect(before.otp.codeLength).toBe(8);
    expect(after.otp.codeLength).toBe(9);
  });

  it("shares a result no caller can change", () => {
    const s = readSettings({ flows: { httpAllowedHosts: ["api.example.com"] } });
    expect(Object.isFrozen(s)).toBe(true);
    expect(() => {
      (s.flows.httpAllowedHosts as string[]).push("evil.example");
    }).toThrow(TypeError);
    expect(() => {
      (s.otp as { maxAttempts: number }).maxAttempts = 99;
    }).toThrow(TypeError);
    // defaults are not shared with the next parse in a way a change could leak through
    expect(readSettings({}).flows.httpAllowedHosts).toEqual([]);
  });

  it("missing settings are parsed once; stored text is parsed once per exact text", () => {
    const a = readSettings(null);
    expect(readSettings(undefined)).toBe(a);
    parse.mockClear();
    const t1 = readSettingsText("tenant-memo", '{"otp":{"codeLength":7}}');
    expect(readSettingsText("tenant-memo", '{"otp":{"codeLength":7}}')).toBe(t1);
    expect(readSettingsText("tenant-memo", '{"otp":{"codeLength":6}}').otp.codeLength).toBe(6);
    expect(parse).toHaveBeenCalledTimes(2);
  });

  it("still refuses invalid stored settings, every time", () => {
    const bad = { otp: { codeLength: 3 } };
    expect(() => readSettings(bad)).toThrow();
    expect(() => readSettings(bad)).toThrow();
  });
});
