/** The phase log both recording isolators write to, in call order. */
export const phases: string[] = [];
