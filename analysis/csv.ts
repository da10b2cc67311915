// A small RFC 4180 CSV parser: the project has csv-stringify but no csv-parse,
// and runs.csv (written by csv-stringify) needs quotes, commas and newlines
// inside quoted fields to round-trip.

/** Parse CSV text into records (arrays of fields). Accepts LF or CRLF line ends. */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false; // inside a quoted field
  let i = 0;
  if (text.charCodeAt(0) === 0xfeff) i = 1; // a BOM is not part of the first header
  const endField = () => {
    record.push(field);
    field = '';
  };
  const endRecord = () => {
    endField();
    records.push(record);
    record = [];
  };
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"'; // "" inside quotes is one literal quote
          i++;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
    } else if (c === '"' && field === '') {
      quoted = true;
    } else if (c === ',') {
      endField();
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
    } else {
      field += c;
    }
  }
  if (quoted) throw new Error('CSV: a quoted field is not closed before the end of the file');
  // The last record has no line end when the file does not end with one.
  if (field !== '' || record.length > 0) endRecord();
  return records;
}

export interface CsvTable {
  header: string[];
  rows: Record<string, string>[];
}

/** Parse CSV text whose first record is the header; rows are keyed by column name. */
export function parseCsvTable(text: string): CsvTable {
  const records = parseCsv(text).filter((r) => !(r.length === 1 && r[0] === '')); // blank lines
  if (records.length === 0) return { header: [], rows: [] };
  const [header, ...body] = records;
  const rows = body.map((r, n) => {
    if (r.length !== header.length) {
      throw new Error(`CSV: record ${n + 2} has ${r.length} fields, the header has ${header.length}`);
    }
    return Object.fromEntries(header.map((h, k) => [h, r[k]]));
  });
  return { header, rows };
}
