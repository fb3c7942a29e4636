/** The test cards of architecture.md §7, as the leak sweep looks for them. */
export const TEST_PANS = [
  '4111111111111111',
  '4012888888881881',
  '5555555555554444',
  '2223000048400011',
  '378282246310005',
  '6011111111111117',
  '3530111333300000',
  '4000000000000002',
] as const;
